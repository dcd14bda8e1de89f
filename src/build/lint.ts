import { BasaltError } from '../oci/errors.js';
import { LINT_RULES, type LintLevel, type LintRule } from './lint-rules.js';
import type { RootTree } from './root-tree.js';

/** `basalt container lint`: runs the rules over a tree and reports, without printing. */
export interface LintFinding {
  lint: string;
  level: LintLevel;
  message: string;
  paths: string[];
}

export interface LintReport {
  source: string;
  passed: string[];
  skipped: string[];
  findings: LintFinding[];
  fatal: number;
  warnings: number;
}

export interface LintOptions {
  skip?: readonly string[];
}

export function listLints(): Array<Pick<LintRule, 'name' | 'level' | 'description'>> {
  return LINT_RULES.map(({ name, level, description }) => ({ name, level, description }));
}

export function lintTree(tree: RootTree, options: LintOptions = {}): LintReport {
  const skip = new Set(options.skip ?? []);
  const unknown = [...skip].filter((s) => !LINT_RULES.some((r) => r.name === s));
  if (unknown.length) throw new BasaltError('usage', `no lint named ${unknown.map((u) => `"${u}"`).join(', ')}`, { hint: `lints: ${LINT_RULES.map((r) => r.name).join(', ')}` });
  const report: LintReport = { source: tree.source, passed: [], skipped: [], findings: [], fatal: 0, warnings: 0 };
  for (const rule of LINT_RULES) {
    if (skip.has(rule.name)) {
      report.skipped.push(rule.name);
      continue;
    }
    const problems = rule.check(tree);
    if (problems.length === 0) report.passed.push(rule.name);
    for (const p of problems) {
      report.findings.push({ lint: rule.name, level: rule.level, message: p.message, paths: p.paths });
      if (rule.level === 'fatal') report.fatal++;
      else report.warnings++;
    }
  }
  return report;
}

/** Whether the report fails the image (warnings count when `fatalWarnings`). */
export function lintFailed(report: LintReport, fatalWarnings = false): boolean {
  return report.fatal > 0 || (fatalWarnings && report.warnings > 0);
}

/** A 'invalid' error summarising a failed report, naming the image or directory. */
export function lintError(report: LintReport, fatalWarnings = false): BasaltError {
  const counted = report.findings.filter((f) => f.level === 'fatal' || fatalWarnings);
  const names = [...new Set(counted.map((f) => f.lint))].join(', ');
  const first = counted[0] ? `; first: ${counted[0].message}` : '';
  return new BasaltError('invalid', `${report.source} is not a bootable image: ${counted.length} lint finding${counted.length === 1 ? '' : 's'} (${names})${first}`, {
    hint: 'see `basalt container lint` for every finding; --skip NAME skips a lint',
  });
}
