// contrast.ts: WCAG ratios and brand colours adjusted for each theme.
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { test } from "node:test";
import { brandFor, contrast, GROUNDS, luminance, readableOn, TEXT_CONTRAST, UI_CONTRAST } from "./contrast.js";
import type { Theme } from "./theme";

const THEMES: Theme[] = ["dark", "light"];

function hsl(hex: string): { h: number; s: number; l: number } {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const max = Math.max(r, g, b), min = Math.min(r, g, b), l = (max + min) / 2, d = max - min;
  if (!d) return { h: 0, s: 0, l };
  const s = l > 0.5 ? d / (2 - max - min) : d / (max + min);
  const h = max === r ? ((g - b) / d + 6) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  return { h: h * 60, s, l };
}

test("contrast ratios are WCAG's", () => {
  assert.equal(contrast("#000000", "#ffffff"), 21);
  assert.equal(contrast("#ffffff", "#000000"), 21);
  assert.equal(contrast("#777777", "#777777"), 1);
  assert.equal(contrast("#fff", "#ffffff"), 1);
  assert.equal(Math.round(contrast("#767676", "#ffffff") * 100) / 100, 4.54); // the classic AA grey
  assert.equal(luminance("#ffffff"), 1);
  assert.equal(luminance("not a colour"), 0);
  assert.equal(readableOn("#ffff00"), "#000000");
  assert.equal(readableOn("#000080"), "#ffffff");
});

test("the grounds are styles.css's --bg and --surface", () => {
  const css = readFileSync(new URL("../../src/styles.css", import.meta.url), "utf8");
  for (const theme of THEMES) {
    const block = new RegExp(`\\[data-theme="${theme}"\\][^{]*\\{([^}]*)\\}`).exec(css)?.[1] ?? "";
    assert.match(block, new RegExp(`--bg: ${GROUNDS[theme].bg};`), `${theme} --bg`);
    assert.match(block, new RegExp(`--surface: ${GROUNDS[theme].surface};`), `${theme} --surface`);
  }
});

test("any brand colour is moved to 3:1 against both grounds, with 4.5:1 text on it", () => {
  const samples = ["#ffff00", "#00ff00", "#000080", "#000000", "#ffffff", "#3b3b98", "#16a085", "#ff0000",
    "#9146ff", "#808080", "#f2b705", "#0ff", "#123456", "#fedcba"];
  for (const theme of THEMES) {
    for (const hex of samples) {
      const { color, on } = brandFor(hex, theme);
      assert.match(color, /^#[0-9a-f]{6}$/);
      for (const ground of [GROUNDS[theme].bg, GROUNDS[theme].surface]) {
        assert.ok(contrast(color, ground) >= UI_CONTRAST, `${hex} on ${theme}: ${color} vs ${ground}`);
      }
      assert.ok(contrast(on, color) >= TEXT_CONTRAST, `text ${on} on ${color}`);
    }
  }
});

test("the hue is kept, and a colour that already stands out is left alone", () => {
  assert.equal(brandFor("#000080", "light").color, "#000080");
  assert.equal(brandFor("#ffff00", "dark").color, "#ffff00");
  const navy = brandFor("#000080", "dark").color;
  assert.ok(hsl(navy).l > hsl("#000080").l, `navy lightened on dark: ${navy}`);
  assert.ok(Math.abs(hsl(navy).h - 240) < 2, `navy stays blue: ${navy}`);
  const yellow = brandFor("#ffff00", "light").color;
  assert.ok(hsl(yellow).l < hsl("#ffff00").l, `yellow darkened on light: ${yellow}`);
  assert.ok(Math.abs(hsl(yellow).h - 60) < 2, `yellow stays yellow: ${yellow}`);
  const green = brandFor("#00ff00", "light").color;
  assert.ok(Math.abs(hsl(green).h - 120) < 2, `green stays green: ${green}`);
  // only as far as needed: one step less would not do
  const least = Math.min(contrast(yellow, GROUNDS.light.bg), contrast(yellow, GROUNDS.light.surface));
  assert.ok(least < UI_CONTRAST + 0.2, `yellow darkened no further than needed: ${yellow}`);
});

test("a colour that is not hex falls back to the default brand", () => {
  for (const theme of THEMES) assert.equal(brandFor("red", theme).color, brandFor("#3b3b98", theme).color);
});
