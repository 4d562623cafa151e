// Colour contrast (WCAG 2.x relative luminance) and a company's brand colours made usable on
// either theme.
import type { Theme } from "./theme";

// The pages' own background and card colour per theme: the same values as styles.css's --bg and
// --surface (contrast.test.ts reads styles.css and fails when the two drift apart).
export const GROUNDS: Record<Theme, { bg: string; surface: string }> = {
  dark: { bg: "#0f141a", surface: "#171e27" },
  light: { bg: "#eef0f4", surface: "#ffffff" },
};
export const UI_CONTRAST = 3; // WCAG 1.4.11: borders, fills, focus marks
export const TEXT_CONTRAST = 4.5; // WCAG 1.4.3: normal-size text

function channel(value: number): number {
  const c = value / 255;
  return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

/** #rrggbb or #rgb as three 0-255 numbers; null for anything else. */
function rgb(hex: string): [number, number, number] | null {
  const short = /^#([0-9a-f])([0-9a-f])([0-9a-f])$/i.exec(hex);
  const m = short ? [short[0], ...short.slice(1).map((x) => x + x)] : /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : null;
}

export function luminance(hex: string): number {
  const c = rgb(hex);
  if (!c) return 0;
  const [r, g, b] = c.map(channel);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** The contrast ratio of two colours, 1 to 21. */
export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

export function readableOn(background: string): string {
  return contrast(background, "#000000") >= contrast(background, "#ffffff") ? "#000000" : "#ffffff";
}

function toHsl([r, g, b]: [number, number, number]): [number, number, number] {
  const [R, G, B] = [r / 255, g / 255, b / 255];
  const max = Math.max(R, G, B), min = Math.min(R, G, B);
  const l = (max + min) / 2;
  if (max === min) return [0, 0, l];
  const d = max - min;
  const s = l > 0.5 ? d / (2 - max - min) : d / (max + min);
  const h = max === R ? (G - B) / d + (G < B ? 6 : 0) : max === G ? (B - R) / d + 2 : (R - G) / d + 4;
  return [h / 6, s, l];
}

function toHex([h, s, l]: [number, number, number]): string {
  const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
  const p = 2 * l - q;
  const hue = (t: number) => {
    const u = t < 0 ? t + 1 : t > 1 ? t - 1 : t;
    if (u < 1 / 6) return p + (q - p) * 6 * u;
    if (u < 1 / 2) return q;
    if (u < 2 / 3) return p + (q - p) * (2 / 3 - u) * 6;
    return p;
  };
  const parts = s === 0 ? [l, l, l] : [hue(h + 1 / 3), hue(h), hue(h - 1 / 3)];
  return `#${parts.map((v) => Math.round(v * 255).toString(16).padStart(2, "0")).join("")}`;
}

/**
 * A brand colour made usable on a theme: its lightness moved (hue and saturation kept) until it
 * stands out from the theme's background and cards by at least 3:1, lighter on the dark theme
 * and darker on the light one; with the text colour readable on it (at least 4.5:1).
 */
export function brandFor(hex: string, theme: Theme): { color: string; on: string } {
  const start = rgb(hex) ?? [0x3b, 0x3b, 0x98];
  const ground = GROUNDS[theme];
  const enough = (c: string) => contrast(c, ground.bg) >= UI_CONTRAST && contrast(c, ground.surface) >= UI_CONTRAST;
  const [h, s, l0] = toHsl(start);
  let color = toHex([h, s, l0]);
  // luminance grows with lightness at a fixed hue and saturation, so one direction suffices
  const step = theme === "dark" ? 0.01 : -0.01;
  for (let l = l0 + step; !enough(color) && l > 0 && l < 1; l += step) color = toHex([h, s, l]);
  if (!enough(color)) color = theme === "dark" ? "#ffffff" : "#000000";
  return { color, on: readableOn(color) };
}
