import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { artifactsDir } from './demo-harness.ts';

/**
 * The checks every page a person sees must pass in headless Chromium, at a desktop width (1280 px) and a phone width
 * (390 px, light and dark): axe-core finds no WCAG 2.x A/AA violation (contrast included), nothing makes the page
 * scroll sideways, every button is on screen, no scope name is broken across lines. A screenshot of each page at
 * each width goes to test-artifacts/. The page's context must bypass the CSP (axe is injected as a script).
 */
export const PAGE_VIEWS = [
  { width: 1280, scheme: 'light' },
  { width: 390, scheme: 'light' },
  { width: 390, scheme: 'dark' },
] as const;
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface AxeResults {
  violations: { id: string; impact: string | null; help: string; nodes: { target: unknown[] }[] }[];
}

/** Layout problems a phone user would meet, measured in the page (page-side source: the tests compile without DOM types). */
const LAYOUT_PROBLEMS = `(() => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width + 1) problems.push('the page scrolls sideways (' + document.documentElement.scrollWidth + ' > ' + width + ')');
  for (const button of document.querySelectorAll('button')) {
    const box = button.getBoundingClientRect();
    if (box.width === 0) continue;
    if (box.left < 0 || box.right > width + 1) problems.push('button "' + button.textContent.trim() + '" is off-screen (' + Math.round(box.left) + '-' + Math.round(box.right) + ')');
  }
  for (const scope of document.querySelectorAll('.scope')) {
    if (scope.getClientRects().length > 1) problems.push('scope "' + scope.textContent + '" is broken across lines');
  }
  return problems;
})()`;

const RUN_AXE = `axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })`;

/** Runs every check on the page as it is now, in each view, and saves a screenshot of each; returns their paths. */
export async function checkPageInEveryView(page: Page, name: string): Promise<string[]> {
  const paths: string[] = [];
  for (const { width, scheme } of PAGE_VIEWS) {
    await page.setViewportSize({ width, height: 900 });
    await page.emulateMedia({ colorScheme: scheme });
    // The pages carry no script and their CSP allows none: axe is injected with the CSP bypassed for the test.
    if ((await page.evaluate('typeof axe')) === 'undefined') await page.addScriptTag({ content: axeSource });
    const results = (await page.evaluate(RUN_AXE)) as AxeResults;
    const violations = results.violations.map((violation) => `${violation.id} (${violation.impact}): ${violation.help} — ${violation.nodes.map((node) => JSON.stringify(node.target)).join(', ')}`);
    assert.deepEqual(violations, [], `${name} at ${width} px (${scheme}): axe violations`);
    assert.deepEqual(await page.evaluate(LAYOUT_PROBLEMS), [], `${name} at ${width} px (${scheme}): layout`);
    const path = join(artifactsDir, `page-${name}-${width}${scheme === 'dark' ? '-dark' : ''}.png`);
    await page.screenshot({ path, fullPage: true });
    paths.push(path);
  }
  return paths;
}
