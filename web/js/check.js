// The connection check page: runs connection-check.js and shows each result as a line with a
// plain word for its outcome and, where something fails, what to do.

import { runChecks, summary } from './connection-check.js';

const runButton = /** @type {HTMLButtonElement} */ (document.getElementById('run-check'));
const summaryLine = /** @type {HTMLElement} */ (document.getElementById('check-summary'));
const list = /** @type {HTMLUListElement} */ (document.getElementById('check-results'));

/** What a person reads for each outcome (not colour alone). */
const OUTCOME_WORDS = Object.freeze({
  running: 'Checking',
  ok: 'Works',
  warn: 'Works, with a limit',
  fail: 'Fails',
  skipped: 'Not offered',
});

/** @param {import('./connection-check.js').CheckResult} result */
function show(result) {
  let item = /** @type {HTMLLIElement | null} */ (list.querySelector(`li[data-check="${CSS.escape(result.id)}"]`));
  if (!item) {
    item = document.createElement('li');
    item.dataset.check = result.id;
    list.append(item);
  }
  item.className = `check-${result.outcome}`;
  const title = document.createElement('strong');
  title.textContent = `${result.label}: ${OUTCOME_WORDS[result.outcome]}`;
  const text = document.createElement('p');
  text.textContent = result.text;
  item.replaceChildren(title, text);
  if (result.fix) {
    const fix = document.createElement('p');
    fix.className = 'check-fix';
    fix.textContent = `What to do: ${result.fix}`;
    item.append(fix);
  }
}

async function run() {
  runButton.disabled = true;
  list.replaceChildren();
  summaryLine.textContent = 'Checking…';
  const url = new URL('/ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  try {
    const results = await runChecks({ url: url.href, secure: window.isSecureContext, report: show });
    summaryLine.textContent = summary(results);
  } catch (error) {
    summaryLine.textContent = `The check itself failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    runButton.disabled = false;
  }
}

runButton.addEventListener('click', run);
run();
