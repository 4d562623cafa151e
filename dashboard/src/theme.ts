// The dark and light themes: which one is on (<html data-theme>), remembered by this browser.
import { createElement, useSyncExternalStore } from "react";

export type Theme = "dark" | "light";

const THEME_KEY = "controlroom.theme";
const listeners = new Set<() => void>();

function isTheme(value: unknown): value is Theme {
  return value === "dark" || value === "light";
}

/** The theme this browser chose last time; dark (the wall's) otherwise. */
export function initialTheme(): Theme {
  try {
    const saved = localStorage.getItem(THEME_KEY);
    return isTheme(saved) ? saved : "dark";
  } catch {
    return "dark"; // storage refused (privacy settings): the default
  }
}

/** The theme now on screen (styles.css treats a missing attribute as dark). */
export function currentTheme(): Theme {
  const on = document.documentElement.dataset.theme;
  return isTheme(on) ? on : "dark";
}

function show(t: Theme): void {
  document.documentElement.dataset.theme = t;
  for (const l of listeners) l();
}

/** Puts the remembered theme on screen; call before the first render so nothing flashes. */
export function startTheme(): Theme {
  const t = initialTheme();
  show(t);
  return t;
}

/** Switches to a theme and remembers it for this browser. */
export function applyTheme(t: Theme): void {
  show(t);
  try {
    localStorage.setItem(THEME_KEY, t);
  } catch {
    // not remembered, still applied
  }
}

export function toggleTheme(): Theme {
  const next: Theme = currentTheme() === "dark" ? "light" : "dark";
  applyTheme(next);
  return next;
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  // another tab switched: follow it
  const storage = (e: StorageEvent) => { if (e.key === THEME_KEY && isTheme(e.newValue)) show(e.newValue); };
  window.addEventListener("storage", storage);
  return () => { listeners.delete(listener); window.removeEventListener("storage", storage); };
}

/** The theme on screen, re-rendering when it changes (for colours computed in script, e.g. brandFor, charts). */
export function useTheme(): Theme {
  return useSyncExternalStore(subscribe, currentTheme, () => "dark" as Theme);
}

/** The top bar's switch: pressed when the light theme is on. */
export function ThemeToggle() {
  const theme = useTheme();
  const light = theme === "light";
  return createElement(
    "button",
    {
      type: "button",
      className: "theme-toggle",
      "aria-pressed": light,
      "aria-keyshortcuts": "Shift+D",
      title: `Switch to the ${light ? "dark" : "light"} theme (Shift+D)`,
      onClick: () => applyTheme(light ? "dark" : "light"),
      "data-testid": "theme-toggle",
    },
    createElement("span", { "aria-hidden": true, className: "theme-toggle-mark" }, light ? "☀" : "☾"),
    " Light theme",
  );
}
