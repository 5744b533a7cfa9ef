/**
 * JSON Schemas derived from QEMU's docs/interop/vhost-user.json (QAPI), written once here.
 * - VHostUserBackendCapabilities: a union on `type`; the gpu, input and block branches carry a mandatory
 *   `features` list of their own enum; the other branches carry no member.
 * - VhostUserBackend: the descriptor file a back-end installs.
 */

/** @VHostUserBackendType */
export const BACKEND_TYPES = [
  '9p',
  'balloon',
  'block',
  'caif',
  'console',
  'crypto',
  'gpu',
  'input',
  'net',
  'rng',
  'rpmsg',
  'rproc-serial',
  'scsi',
  'vsock',
  'fs',
] as const;

/** @VHostUserBackendBlockFeature, @VHostUserBackendInputFeature, @VHostUserBackendGPUFeature */
export const FEATURES_BY_TYPE: Readonly<Record<string, readonly string[]>> = {
  block: ['read-only', 'blk-file'],
  input: ['evdev-path', 'no-grab'],
  gpu: ['render-node', 'virgl'],
};

const typesWithFeatures = Object.keys(FEATURES_BY_TYPE);

/**
 * What every back-end must print: an object whose `type` is in the enum, and for the types that define
 * features, a `features` list of strings. Names outside the enums are left to the strict schema.
 */
export const capabilitiesSchema = {
  $id: 'vhost-user.json#VHostUserBackendCapabilities',
  type: 'object',
  required: ['type'],
  properties: {
    type: { enum: [...BACKEND_TYPES] },
    features: { type: 'array', items: { type: 'string' } },
  },
  if: { properties: { type: { enum: typesWithFeatures } } },
  // biome-ignore lint/suspicious/noThenProperty: JSON Schema keyword
  then: { required: ['features'] },
} as const;

/** The full QAPI rule: known members only, each feature from its type's enum, no duplicates. */
export const capabilitiesStrictSchema = {
  $id: 'vhost-user.json#VHostUserBackendCapabilities/strict',
  type: 'object',
  required: ['type'],
  properties: { type: { enum: [...BACKEND_TYPES] } },
  oneOf: [
    ...Object.entries(FEATURES_BY_TYPE).map(([type, features]) => ({
      properties: {
        type: { const: type },
        features: { type: 'array', uniqueItems: true, items: { enum: [...features] } },
      },
      required: ['type', 'features'],
      additionalProperties: false,
    })),
    {
      properties: { type: { not: { enum: typesWithFeatures } } },
      additionalProperties: false,
    },
  ],
} as const;

/** @VhostUserBackend */
export const descriptorSchema = {
  $id: 'vhost-user.json#VhostUserBackend',
  type: 'object',
  required: ['description', 'type', 'binary'],
  properties: {
    description: { type: 'string' },
    type: { enum: [...BACKEND_TYPES] },
    binary: { type: 'string' },
    tags: { type: 'array', items: { type: 'string' } },
  },
  additionalProperties: false,
} as const;
