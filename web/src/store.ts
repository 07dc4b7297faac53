/**
 * A minimal observable store: one state object, replaced (never mutated) by `set`, and listeners told the new
 * and the previous state so each view redraws only when the part it shows changed.
 */

export type Listener<S> = (state: Readonly<S>, previous: Readonly<S>) => void;

export interface Store<S extends object> {
  get(): Readonly<S>;
  /** Merges `patch` into a new state object and tells every listener, in subscription order. */
  set(patch: Partial<S>): void;
  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: Listener<S>): () => void;
}

export function createStore<S extends object>(initial: S): Store<S> {
  let state: Readonly<S> = Object.freeze({ ...initial });
  const listeners = new Set<Listener<S>>();
  return {
    get: () => state,
    set(patch) {
      const previous = state;
      state = Object.freeze({ ...state, ...patch });
      for (const listener of listeners) listener(state, previous);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
