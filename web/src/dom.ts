/**
 * Small typed DOM helpers shared by the views: element lookup by id, element creation without innerHTML, and
 * status lines. Nothing here runs at import time, so modules that use it can be imported by Node tests.
 */

/** The element with this id, checked to be of `type` (index.html and the code agree on ids; a mismatch throws). */
export function byId<T extends HTMLElement = HTMLElement>(id: string, type?: abstract new () => T): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no element #${id}`);
  if (type && !(el instanceof type)) throw new Error(`#${id} is a <${el.tagName.toLowerCase()}>, not a ${type.name}`);
  return el as T;
}

type Props<K extends keyof HTMLElementTagNameMap> = Partial<Omit<HTMLElementTagNameMap[K], 'dataset' | 'style'>> & {
  /** Attributes set with setAttribute (aria-*, role, ...). */
  attrs?: Record<string, string>;
  dataset?: Record<string, string>;
};

/** A new element with properties, attributes and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props<K> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const { attrs, dataset, ...rest } = props;
  const el = Object.assign(document.createElement(tag), rest);
  for (const [name, value] of Object.entries(attrs ?? {})) el.setAttribute(name, value);
  Object.assign(el.dataset, dataset);
  el.append(...children);
  return el;
}

/** Sets a status line's text; `busy` shows it as work in progress (a spinner, by styles.css). */
export function setStatus(el: HTMLElement, text: string, busy = false): void {
  el.textContent = text;
  el.classList.toggle('busy', busy);
}
