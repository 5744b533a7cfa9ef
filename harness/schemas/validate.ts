import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { capabilitiesSchema, capabilitiesStrictSchema, descriptorSchema } from './vhost-user.js';

/**
 * The one Ajv instance, made on the first validation: making it compiles JSON Schema's meta-schema (about
 * 40 ms), which a command that validates nothing (--version, --list) should not pay.
 */
let ajv: Ajv | undefined;

/** A validator of `schema`, compiled on its first use (a schema's compile is tens of ms too). */
function validator(schema: object): (doc: unknown) => string[] {
  let validate: ValidateFunction | undefined;
  return (doc) => {
    ajv ??= new Ajv({ allErrors: true, strict: false });
    validate ??= ajv.compile(schema);
    return validate(doc) ? [] : formatErrors(validate.errors ?? []);
  };
}

function formatErrors(errors: ErrorObject[]): string[] {
  // oneOf reports every branch; the branch-level errors say more than the summary line.
  const detailed = errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'if');
  return (detailed.length ? detailed : errors).map((e) => {
    const where = e.instancePath || '(root)';
    const extra =
      e.keyword === 'enum' || e.keyword === 'const'
        ? `: ${JSON.stringify(e.params.allowedValues ?? e.params.allowedValue)}`
        : e.keyword === 'additionalProperties'
          ? `: ${String(e.params.additionalProperty)}`
          : '';
    return `${where} ${e.message ?? e.keyword}${extra}`;
  });
}

/** Errors against VHostUserBackendCapabilities as every back-end must meet it; empty when valid. */
export const validateCapabilities = validator(capabilitiesSchema);
/** Errors against the strict reading (known features and members only). */
export const validateCapabilitiesStrict = validator(capabilitiesStrictSchema);
/** Errors against VhostUserBackend (a descriptor file). */
export const validateDescriptor = validator(descriptorSchema);

/**
 * The JSON Schema of report.json, shipped in the package as harness/schemas/report.schema.json (found from
 * dist/harness/schemas/, where this module runs).
 */
export const REPORT_SCHEMA_FILE = fileURLToPath(
  new URL('../../../harness/schemas/report.schema.json', import.meta.url),
);

/** The JSON Schema of an ABI fingerprint (`vhu-conform abi`), shipped beside the report's. */
export const ABI_SCHEMA_FILE = fileURLToPath(
  new URL('../../../harness/schemas/abi.schema.json', import.meta.url),
);

/** The JSON Schema of a baseline file (--baseline, --write-baseline), shipped beside the report's. */
export const BASELINE_SCHEMA_FILE = fileURLToPath(
  new URL('../../../harness/schemas/baseline.schema.json', import.meta.url),
);

/** The JSON Schema of `--all`'s matrix.json, shipped beside the report's. */
export const MATRIX_SCHEMA_FILE = fileURLToPath(
  new URL('../../../harness/schemas/matrix.schema.json', import.meta.url),
);

const shippedValidators = new Map<string, (doc: unknown) => string[]>();

function shippedValidator(file: string): (doc: unknown) => string[] {
  let validate = shippedValidators.get(file);
  if (!validate) {
    validate = validator(JSON.parse(readFileSync(file, 'utf8')) as object);
    shippedValidators.set(file, validate);
  }
  return validate;
}

/** Errors of a report.json document against {@link REPORT_SCHEMA_FILE}; empty when valid. */
export function validateReport(doc: unknown): string[] {
  return shippedValidator(REPORT_SCHEMA_FILE)(doc);
}

/** Errors of an ABI fingerprint against {@link ABI_SCHEMA_FILE}; empty when valid. */
export function validateAbi(doc: unknown): string[] {
  return shippedValidator(ABI_SCHEMA_FILE)(doc);
}

/** Errors of a baseline document against {@link BASELINE_SCHEMA_FILE}; empty when valid. */
export function validateBaseline(doc: unknown): string[] {
  return shippedValidator(BASELINE_SCHEMA_FILE)(doc);
}

/** Errors of a matrix.json document against {@link MATRIX_SCHEMA_FILE}; empty when valid. */
export function validateMatrix(doc: unknown): string[] {
  return shippedValidator(MATRIX_SCHEMA_FILE)(doc);
}
