/**
 * What differs between two fingerprints that should be equal (migrate.abi-stable: two launches with the same
 * arguments, or two connections to one back-end): one line per field, with both values. Where compat.ts asks
 * whether a guest can move (the destination may offer more), this asks for identity.
 */
import type { AbiFingerprint, FeatureSet } from './format.js';
import { stableJson } from './format.js';

/** How the two sides are called in the lines (`launch 1`, `launch 2`). */
export interface DiffNames {
  first: string;
  second: string;
}

/**
 * The fields of `first` and `second` that differ, each as `path: <first> X, <second> Y`. A feature set names
 * the bits only one side offers; a config space is compared field by field, its bytes only when no decoded
 * field differs (a reserved byte). The profiles' negotiations are left out: they follow from the offers and
 * the type, which are compared.
 */
export function abiDifferences(
  first: AbiFingerprint,
  second: AbiFingerprint,
  names: DiffNames = { first: 'first', second: 'second' },
): string[] {
  const lines: string[] = [];
  const { profiles: _a, ...a } = first;
  const { profiles: _b, ...b } = second;
  walk('', a, b, names, lines);
  return lines;
}

function walk(path: string, a: unknown, b: unknown, names: DiffNames, lines: string[]): void {
  if (isFeatureSet(a) && isFeatureSet(b)) {
    if (a.hex !== b.hex) lines.push(featureLine(path, a, b, names));
    return;
  }
  if (isRecord(a) && isRecord(b)) {
    // A decoded config space: its bytes say nothing more than its fields unless the fields agree.
    const deferred = 'fields' in a && 'fields' in b ? ['hex'] : [];
    const before = lines.length;
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (!deferred.includes(key)) walk(join(path, key), a[key], b[key], names, lines);
    }
    if (lines.length === before)
      for (const key of deferred) walk(join(path, key), a[key], b[key], names, lines);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    for (const [i, item] of a.entries()) walk(`${path}[${i}]`, item, b[i], names, lines);
    return;
  }
  const differ = a === undefined || b === undefined ? a !== b : stableJson(a) !== stableJson(b);
  if (differ) lines.push(`${path}: ${names.first} ${show(a)}, ${names.second} ${show(b)}`);
}

function featureLine(path: string, a: FeatureSet, b: FeatureSet, names: DiffNames): string {
  const only = (x: FeatureSet, y: FeatureSet) => x.names.filter((n) => !y.names.includes(n));
  const parts = [
    [names.first, only(a, b)],
    [names.second, only(b, a)],
  ] as const;
  const which = parts
    .filter(([, bits]) => bits.length > 0)
    .map(([side, bits]) => `${bits.join(', ')} offered on ${side} only`);
  return `${path}: ${names.first} ${a.hex}, ${names.second} ${b.hex}${which.length ? ` (${which.join('; ')})` : ''}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isFeatureSet(value: unknown): value is FeatureSet {
  return isRecord(value) && typeof value.hex === 'string' && Array.isArray(value.names);
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function show(value: unknown): string {
  return value === undefined ? '(absent)' : JSON.stringify(value);
}
