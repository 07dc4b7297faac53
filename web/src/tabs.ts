/**
 * The section tabs, as the WAI-ARIA tabs pattern with automatic activation: one tab in the tab order (roving
 * tabindex), arrow keys / Home / End move between tabs and show them, and the shown tab is kept in the URL
 * hash (#query, #info; none for the first) so a link or a reload opens it.
 */

export interface Tabs {
  /** Shows the tab named `name` (its id is `tab-<name>`); `focus` moves the keyboard focus to it too. */
  select(name: string, options?: { focus?: boolean }): void;
}

/**
 * Wires the `[role="tab"]` buttons of `tablist` (each with aria-controls naming its panel). `onShow[name]` runs
 * each time that tab is shown, e.g. to load its content.
 */
export function createTabs(tablist: HTMLElement, onShow: Record<string, () => void> = {}): Tabs {
  const tabs = [...tablist.querySelectorAll<HTMLElement>('[role="tab"]')];
  const nameOf = (tab: HTMLElement) => tab.id.replace(/^tab-/, '');
  const first = tabs[0];

  function show(tab: HTMLElement, focus: boolean): void {
    for (const t of tabs) {
      const selected = t === tab;
      t.setAttribute('aria-selected', String(selected));
      t.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(t.getAttribute('aria-controls') ?? '');
      if (panel) panel.hidden = !selected;
    }
    if (focus) tab.focus();
    history.replaceState(null, '', tab === first ? location.pathname + location.search : `#${nameOf(tab)}`);
    onShow[nameOf(tab)]?.();
  }

  const KEY_STEPS: Record<string, (i: number) => number> = {
    ArrowRight: (i) => i + 1,
    ArrowLeft: (i) => i - 1,
    Home: () => 0,
    End: () => tabs.length - 1,
  };
  for (const tab of tabs) {
    tab.addEventListener('click', () => show(tab, false));
    tab.addEventListener('keydown', (event) => {
      const step = KEY_STEPS[event.key];
      if (!step) return;
      event.preventDefault();
      const next = (step(tabs.indexOf(tab)) + tabs.length) % tabs.length;
      show(tabs[next], true);
    });
  }

  const fromHash = tabs.find((t) => nameOf(t) === location.hash.slice(1));
  if (fromHash) show(fromHash, false);

  return {
    select(name, { focus = false } = {}) {
      const tab = tabs.find((t) => nameOf(t) === name);
      if (tab) show(tab, focus);
    },
  };
}
