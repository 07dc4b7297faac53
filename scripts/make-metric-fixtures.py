#!/usr/bin/env python3
"""Golden fixtures for the caption metrics, made by the real COCO caption toolkit.

Runs pycocoevalcap (PTBTokenizer -> Stanford CoreNLP 3.4.1, Bleu(4), Meteor -> meteor-1.5.jar,
Rouge, Cider) exactly as COCOEvalCap.evaluate() does, on synthetic caption sets written here, and
writes small JSON files under test/fixtures/metrics/ that test/metrics.test.ts compares against.

    pip install pycocoevalcap   # needs Java (17 works)
    python3 scripts/make-metric-fixtures.py [--data-dir ../shared/datasets] [--out test/fixtures/metrics]

Outputs:
  sets.json            synthetic caption sets: raw captions, the toolkit's tokenisation, corpus and
                       per-image scores of every metric
  ptb-cases.json       tricky captions and the toolkit's tokenisation of them
  flickr8k-val200.json (only when the Flickr8k dataset is found) one reference caption scored against
                       the other four for 200 val images: image names and scores only, no caption text

The captions are generated from the templates below (no dataset text is copied).
"""
import argparse
import json
import os
import random
import sys

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

# ---------------------------------------------------------------- synthetic scenes

SUBJECTS = [
    (["man", "guy", "person", "male"], ["young", "older", "bearded", "tall", "shirtless"]),
    (["woman", "lady", "person", "female"], ["young", "older", "smiling", "blond", "dark-haired"]),
    (["dog", "puppy", "canine"], ["black", "brown", "white", "small", "fluffy", "black-and-white"]),
    (["boy", "kid", "child"], ["little", "young", "5-year-old", "smiling"]),
    (["girl", "kid", "child"], ["little", "young", "smiling", "curly-haired"]),
    (["cyclist", "biker", "bike rider"], ["professional", "young", "helmeted"]),
    (["surfer", "man", "person"], ["young", "wet", "skilled"]),
    (["skateboarder", "skater", "teenager"], ["young", "daring", "tattooed"]),
]
GROUPS = ["two men", "a group of people", "three children", "two dogs", "a crowd of people", "two girls", "several kids"]
ACTIONS = [
    (["riding a bike", "rides a bicycle", "is riding a bicycle", "is biking", "rode a bike"], "bike"),
    (["jumping over a fence", "jumps over a fence", "is leaping over a fence", "leaps a fence"], "fence"),
    (["running through the grass", "runs through the grass", "is running on the grass", "sprints across the lawn"], "grass"),
    (["playing with a ball", "plays with a red ball", "is playing with a ball", "chases a ball"], "ball"),
    (["surfing a wave", "surfs a large wave", "is surfing on a wave", "rides a wave"], "wave"),
    (["climbing a rock wall", "climbs a rock", "is climbing up a cliff", "scales a rock face"], "rock"),
    (["sitting on a bench", "sits on a wooden bench", "is sitting on a park bench", "rests on a bench"], "bench"),
    (["walking down the street", "walks along the street", "is walking on a sidewalk", "strolls down a road"], "street"),
    (["swimming in a pool", "swims in the pool", "is swimming in the water", "paddles in a pool"], "pool"),
    (["throwing a frisbee", "throws a frisbee", "is tossing a frisbee", "catches a frisbee"], "frisbee"),
    (["holding an umbrella", "holds an umbrella", "is carrying an umbrella", "stands under an umbrella"], "umbrella"),
    (["skiing down a slope", "skis down a snowy hill", "is skiing on the snow", "goes down a ski slope"], "snow"),
]
PLACES = [
    ["in the park", "at a park", "in a grassy park"],
    ["on the beach", "at the beach", "on a sandy beach", "by the ocean"],
    ["in the snow", "on a snowy hill", "in the winter snow"],
    ["on a city street", "in the city", "on a busy street", "downtown"],
    ["near a lake", "by the lake", "next to a lake"],
    ["in front of a building", "outside a building", "by a brick building"],
    ["on a dirt path", "on a trail", "along a dirt road"],
    ["at night", "in the evening", "after dark"],
    ["in a field", "in an open field", "across a meadow"],
]
EXTRAS = [
    "wearing a red shirt", "wearing a blue t-shirt", "in a black jacket", "with a backpack", "while others watch",
    "with a helmet on", "in a striped sweater", "holding a cup of coffee", "with 2 friends", "wearing sunglasses",
]
# Surface styles the tokenizer must handle like the toolkit
DECORATIONS = [
    lambda s: s + " .",
    lambda s: s + ".",
    lambda s: s,
    lambda s: s + "!",
    lambda s: s + " ...",
    lambda s: s.replace(" is ", " 's ", 1) if " is " in s else s + ".",
    lambda s: '"' + s + '"',
    lambda s: s + " (" + random_word() + ")",
    lambda s: s.replace(" a ", " a very ", 1) + ", outdoors.",
    lambda s: "There is " + s[0].lower() + s[1:] + ".",
    lambda s: s + "; it isn't raining.",
    lambda s: s + " -- it's a sunny day.",
    lambda s: s + " at 5:30 p.m.",
    lambda s: s + " near the dog's toy.",
    lambda s: s.upper() + ".",
    lambda s: s + " and/or a friend.",
    lambda s: s + " & his friend's dog.",
    lambda s: s + " in the U.S.",
    lambda s: "A photo of " + s[0].lower() + s[1:] + ",  with    extra   spaces .",
    lambda s: s + " with 1,000 people and 3.5 dogs.",
    lambda s: s + " - maybe 10-15 years old?",
    lambda s: s + " on a 'sunny' day.",
    lambda s: s + " \u201cnicely\u201d \u2014 wow\u2026",
    lambda s: s + " wearing a caf\u00e9 apron.",
]
_rng = random.Random(0)


def random_word():
    return _rng.choice(["blurry", "close-up", "black and white", "outdoors", "2 people", "again", "see photo"])


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def phrase(rng, subj_idx, adj_p=0.5):
    names, adjs = SUBJECTS[subj_idx]
    name = rng.choice(names)
    if rng.random() < adj_p:
        adj = rng.choice(adjs)
        return f"{article(adj)} {adj} {name}"
    return f"{article(name)} {name}"


def scene_caption(rng, scene):
    subj_idx, group, act_idx, place_idx = scene
    subject = group if group and rng.random() < 0.7 else phrase(rng, subj_idx)
    verb = rng.choice(ACTIONS[act_idx][0])
    if group and subject == group:
        verb = verb.replace(" is ", " are ").replace("rides", "ride").replace("jumps", "jump").replace("runs", "run")
    parts = [subject, verb]
    if rng.random() < 0.8:
        parts.append(rng.choice(PLACES[place_idx]))
    if rng.random() < 0.3:
        parts.append(rng.choice(EXTRAS))
    s = " ".join(parts)
    s = s[0].upper() + s[1:]
    return s


def decorate(rng, s, p):
    if rng.random() < p:
        return rng.choice(DECORATIONS)(s)
    return s + rng.choice([" .", ".", ""])


SYNONYMS = {"bike": "bicycle", "bicycle": "bike", "man": "guy", "dog": "puppy", "street": "road", "grass": "lawn",
            "running": "jogging", "child": "kid", "kid": "child", "small": "little", "large": "big", "woman": "lady"}


def perturb(rng, ref, other):
    """A candidate caption made from a reference by one systematic change."""
    words = ref.split()
    kind = rng.choice(["same", "drop", "swap", "synonym", "tense", "truncate", "duplicate", "other", "extend",
                       "shuffle", "case", "punct", "same", "drop", "synonym"])
    if kind == "same" or len(words) < 3:
        out = ref
    elif kind == "drop":
        i = rng.randrange(len(words))
        out = " ".join(words[:i] + words[i + 1:])
    elif kind == "swap":
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
        out = " ".join(words)
    elif kind == "synonym":
        out = " ".join(SYNONYMS.get(w, w) for w in words)
    elif kind == "tense":
        out = " ".join(w[:-3] + "s" if w.endswith("ing") and len(w) > 5 else w for w in words)
    elif kind == "truncate":
        out = " ".join(words[: max(1, len(words) // 2)])
    elif kind == "duplicate":
        i = rng.randrange(len(words))
        out = " ".join(words[: i + 1] + words[i:])
    elif kind == "other":
        out = other
    elif kind == "extend":
        out = ref.rstrip(" .") + " " + rng.choice(EXTRAS) + " " + rng.choice(EXTRAS)
    elif kind == "shuffle":
        rng.shuffle(words)
        out = " ".join(words)
    elif kind == "case":
        out = ref.title()
    else:
        out = ref.rstrip(" .") + rng.choice([" !!", "?", " ;", ", right?", " (again).", ' "yes".'])
    return out


def make_set(rng, name, n_images, decor_p, n_refs=(5, 5), empty_p=0.0):
    images = []
    for i in range(n_images):
        scene = (rng.randrange(len(SUBJECTS)), rng.choice(GROUPS) if rng.random() < 0.25 else None,
                 rng.randrange(len(ACTIONS)), rng.randrange(len(PLACES)))
        k = rng.randint(*n_refs)
        refs = [decorate(rng, scene_caption(rng, scene), decor_p) for _ in range(k)]
        images.append({"id": f"{name}-{i:03d}", "scene": scene, "refs": refs})
    for img in images:
        other = rng.choice(images)
        base = scene_caption(rng, img["scene"]) if rng.random() < 0.5 else rng.choice(img["refs"])
        cand = perturb(rng, base, rng.choice(other["refs"]))
        if rng.random() < empty_p:
            cand = rng.choice(["", ".", "...", " "])
        img["candidate"] = decorate(rng, cand, decor_p / 2) if rng.random() < 0.3 else cand
        del img["scene"]
    return images


# ---------------------------------------------------------------- the toolkit


def toolkit_scores(images, meteor):
    """COCOEvalCap.evaluate() on these images, returning tokenised text and all scores."""
    gts = {img["id"]: [{"caption": c} for c in img["refs"]] for img in images}
    res = {img["id"]: [{"caption": img["candidate"]}] for img in images}
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize(gts)
    res = tokenizer.tokenize(res)
    scores, per_image = {}, {}
    bleu, bleus = Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(4):
        scores[f"BLEU-{k + 1}"] = bleu[k]
        per_image[f"BLEU-{k + 1}"] = [float(x) for x in bleus[k]]
    m, ms = meteor.compute_score(gts, res)
    scores["METEOR"], per_image["METEOR"] = m, [float(x) for x in ms]
    r, rs = Rouge().compute_score(gts, res)
    scores["ROUGE-L"], per_image["ROUGE-L"] = float(r), [float(x) for x in rs]
    c, cs = Cider().compute_score(gts, res)
    scores["CIDEr"], per_image["CIDEr"] = float(c), [float(x) for x in cs]
    ids = [img["id"] for img in images]
    tokenized = {"refs": [gts[i] for i in ids], "candidates": [res[i][0] for i in ids]}
    return tokenized, scores, per_image


PTB_CASES = [
    'A man (in a red shirt) rides a bike.', 'The dog\'s ball isn\'t "red", it\'s blue!', "Two dogs' bowls are empty .",
    "A woman -- smiling -- holds a 3-year-old's hand; she can't stop.", "He said 'hello' to the kids' mom.",
    "A t-shirt, a x-ray and a black-and-white photo.", "3 1/2 dogs, 1,000 cats and 3.5 birds.",
    "It's 5:30 p.m. in the U.S. The sun is low.", "A sign reads \"STOP\" (in red).", "They're gonna win, aren't they?",
    "I cannot believe it's not butter...", "Mr. Smith and Dr. Jones at St. Louis.", "A dog , a cat , and a bird .",
    "A man's hat ; a woman's coat : a child's toy !", "rock'n'roll and 'n' and o'clock and y'all",
    "A dog...The end.", "A dog runs. . . away.", "email me@example.com or visit www.example.com/page",
    "A #1 fan with @friend at http://example.com.", "A 5-year-old boy & his dad / mom.", "[A] {B} <C> D",
    "A man wearing a \u201cNY\u201d hat \u2014 smiling\u2026", "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 jalape\u00f1o.",
    "The 1990s and '90s and the 90's.", "A DOG ISN'T HERE.", "   leading and trailing spaces   ", "",
    "...", "a", "Won't wouldn't shan't ain't", "A boy's and a girl's and the children's toys.",
    "It costs $20 or 50% off, about \u00a315.", "Smith Jr. was here.", "No. 5 is the best.", "A U-turn on Rt. 66.",
    "The man e.g. the one in red.", "A 2x4 board and 4x4 truck.", "A dog--a big one--barks.", "A dog - a big one - barks.",
    "wow!!! really?! yes?", "'Quoted' and ``latex'' and \u2018curly\u2019.", "He's got 'em.", "A mom'll do it, we'd go.",
    "A man in the U.S. Their dog runs.", "Jan. The dog.", "va.x ok", "1.jpg and file.jpg and 1.5.x", "C++ and c# and F#",
    ":) and ;-) and (^_^) and -_-", "me@x.com> and {http://a.com/x}", "Ct. The x and Adj. Smith and Bldg. 5",
    "dunno 'twas 'tis gimme wanna", "fa`oq o'o' #tag #1 \u00bd cup", "I. The end.", "Co. Ltd. and Rt. 66",
    "A dog....The end. A dog..", "a<b>c</b> and <p> and < b >", "2013-09-01 12/25/2014 (555) 123-4567",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "metrics"))
    ap.add_argument("--data-dir", default=os.environ.get("PIXEL_INFO_DATA_DIR", os.path.join("..", "shared", "datasets")))
    ap.add_argument("--flickr-images", type=int, default=200)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(20240601)
    meteor = Meteor()

    specs = [
        ("plain", 60, 0.0, (5, 5), 0.0),
        ("styled", 60, 0.5, (5, 5), 0.0),
        ("heavy", 50, 0.9, (5, 5), 0.05),
        ("varrefs", 50, 0.4, (1, 7), 0.0),
        ("small", 12, 0.6, (3, 5), 0.1),
        ("mixed", 60, 0.3, (4, 6), 0.02),
        ("single", 1, 0.5, (5, 5), 0.0),
    ]
    sets = []
    for name, n, decor, nrefs, empty in specs:
        images = make_set(rng, name, n, decor, nrefs, empty)
        tokenized, scores, per_image = toolkit_scores(images, meteor)
        sets.append({"name": name, "images": images, "tokenized": tokenized, "scores": scores, "perImage": per_image})
        print(f"{name}: {len(images)} images " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()), file=sys.stderr)

    versions = {"pycocoevalcap": _version("pycocoevalcap"), "corenlp": "3.4.1", "meteor": "1.5"}
    with open(os.path.join(args.out, "sets.json"), "w", encoding="utf-8") as f:
        json.dump({"toolkit": versions, "sets": sets}, f, ensure_ascii=False, separators=(",", ":"))

    cases = PTB_CASES + [c for s in sets[:2] for img in s["images"][:20] for c in img["refs"][:2]]
    tok = PTBTokenizer().tokenize({"cases": [{"caption": c} for c in cases]})["cases"]
    with open(os.path.join(args.out, "ptb-cases.json"), "w", encoding="utf-8") as f:
        json.dump({"toolkit": versions, "captions": cases, "tokenized": tok}, f, ensure_ascii=False, indent=0)

    flickr = os.path.join(args.data_dir, "flickr8k", "dataset_flickr8k.json")
    if os.path.exists(flickr):
        data = json.load(open(flickr, encoding="utf-8"))
        val = [im for im in data["images"] if im["split"] == "val"][: args.flickr_images]
        images = [{"id": im["filename"], "refs": [s["raw"] for s in im["sentences"][1:]],
                   "candidate": im["sentences"][0]["raw"]} for im in val]
        _, scores, per_image = toolkit_scores(images, meteor)
        out = {"toolkit": versions, "source": "flickr8k/dataset_flickr8k.json",
               "selection": f"first {len(val)} images with split 'val' in file order; candidate = sentence 0 (raw), "
                            "references = sentences 1-4 (raw)",
               "imageIds": [im["id"] for im in images], "scores": scores, "perImage": per_image}
        with open(os.path.join(args.out, "flickr8k-val200.json"), "w", encoding="utf-8") as f:
            json.dump(out, f, separators=(",", ":"))
        print("flickr8k: " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()), file=sys.stderr)
    else:
        print(f"flickr8k not found under {args.data_dir}: skipped", file=sys.stderr)


def _version(pkg):
    try:
        from importlib.metadata import version
        return version(pkg)
    except Exception:
        return "unknown"


if __name__ == "__main__":
    main()
