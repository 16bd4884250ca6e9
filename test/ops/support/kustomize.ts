/**
 * Renders a kustomization directory as `kubectl apply -k DIR` would, for the part of kustomize
 * deploy/kubernetes uses (there is no kustomize on npm, nor a Kubernetes cluster here): YAML read
 * as Kubernetes reads it (YAML 1.1, so `0440` is octal and `on` a boolean; duplicate keys refused),
 * `resources` (files, and directories holding a kustomization, rendered first), `images` and
 * `patches` given by `path` as strategic merge patches. Any other kustomization field, patch form
 * or patch directive is refused by name, so a test never passes on a file it did not understand.
 *
 * Strategic merge, as Kubernetes defines it for the fields these patches touch: maps merge key by
 * key (a null value deletes the key); lists of containers, init containers, volumes, env and
 * image pull secrets merge element by `name`, volume mounts by `mountPath`, new elements appended;
 * every other list (a container's `args` among them) is replaced whole. A patch listing `ports`
 * is refused: their merge key differs between a container and a Service.
 */
import { loadAll, YAML11_SCHEMA } from 'js-yaml';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** A Kubernetes object, as much of it as every object has. */
export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** An object and the file it came from (relative to the repository). */
export interface Manifest {
  source: string;
  object: KubernetesObject;
}

/** A kustomization or manifest the renderer refuses, with the reason. */
export class KustomizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KustomizeError';
  }
}

/** The kustomization fields the renderer implements. */
const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'images']);

/** List fields merged element by element in a strategic merge patch, and their merge key. */
const MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  volumes: 'name',
  env: 'name',
  imagePullSecrets: 'name',
  volumeMounts: 'mountPath',
};

interface ImageEntry {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

interface Kustomization {
  resources: string[];
  patches: { path: string }[];
  images: ImageEntry[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every document of a YAML file, parsed as Kubernetes parses it; empty documents skipped. */
export function loadYamlDocuments(path: string): unknown[] {
  return loadAll(readFileSync(path, 'utf8'), { schema: YAML11_SCHEMA, filename: path }).filter((document) => document !== null && document !== undefined);
}

function asObject(document: unknown, where: string): KubernetesObject {
  if (!isRecord(document)) throw new KustomizeError(`${where}: not a mapping`);
  const { apiVersion, kind, metadata } = document;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new KustomizeError(`${where}: no apiVersion and kind`);
  if (!isRecord(metadata) || typeof metadata['name'] !== 'string') throw new KustomizeError(`${where}: no metadata.name`);
  return document as KubernetesObject;
}

/** The Kubernetes objects of one manifest file. */
export function loadManifests(path: string, repoRoot: string): Manifest[] {
  const source = relative(repoRoot, path);
  return loadYamlDocuments(path).map((document, index) => ({ source, object: asObject(document, `${source} document ${index + 1}`) }));
}

function stringList(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === 'string')) throw new KustomizeError(`${where}: expected a list of strings`);
  return value;
}

/** Reads `DIR/kustomization.yaml`, refusing any field the renderer does not implement. */
export function readKustomization(dir: string): Kustomization {
  const path = join(dir, 'kustomization.yaml');
  const documents = loadYamlDocuments(path);
  const document = documents[0];
  if (documents.length !== 1 || !isRecord(document)) throw new KustomizeError(`${path}: expected one mapping`);
  if (document['apiVersion'] !== 'kustomize.config.k8s.io/v1beta1' || document['kind'] !== 'Kustomization') {
    throw new KustomizeError(`${path}: expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization`);
  }
  for (const field of Object.keys(document)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new KustomizeError(`${path}: the test's renderer does not implement the kustomization field "${field}"`);
  }
  const patches = (document['patches'] ?? []) as unknown;
  if (!Array.isArray(patches)) throw new KustomizeError(`${path}: patches: expected a list`);
  const images = (document['images'] ?? []) as unknown;
  if (!Array.isArray(images)) throw new KustomizeError(`${path}: images: expected a list`);
  return {
    resources: stringList(document['resources'], `${path}: resources`),
    patches: patches.map((patch, index) => {
      if (!isRecord(patch) || typeof patch['path'] !== 'string' || Object.keys(patch).length !== 1) {
        throw new KustomizeError(`${path}: patches[${index}]: only { path: FILE } (a strategic merge patch naming its target) is implemented`);
      }
      return { path: patch['path'] };
    }),
    images: images.map((image, index) => {
      if (!isRecord(image) || typeof image['name'] !== 'string') throw new KustomizeError(`${path}: images[${index}]: no name`);
      for (const key of Object.keys(image)) {
        if (!['name', 'newName', 'newTag', 'digest'].includes(key)) throw new KustomizeError(`${path}: images[${index}]: unknown field "${key}"`);
      }
      return image as unknown as ImageEntry;
    }),
  };
}

/** The objects `kubectl apply -k dir` would send, in resource order, patched. */
export function renderKustomization(dir: string, repoRoot: string): Manifest[] {
  const kustomization = readKustomization(dir);
  const rendered: Manifest[] = [];
  for (const resource of kustomization.resources) {
    const path = join(dir, resource);
    if (!existsSync(path)) throw new KustomizeError(`${relative(repoRoot, dir)}/kustomization.yaml: resource ${resource} does not exist`);
    rendered.push(...(statSync(path).isDirectory() ? renderKustomization(path, repoRoot) : loadManifests(path, repoRoot)));
  }
  const seen = new Set<string>();
  for (const { object, source } of rendered) {
    const id = objectId(object);
    if (seen.has(id)) throw new KustomizeError(`${source}: ${id} is defined twice`);
    seen.add(id);
  }
  for (const patch of kustomization.patches) {
    for (const { object: patchObject, source } of loadManifests(join(dir, patch.path), repoRoot)) {
      const targets = rendered.filter((manifest) => objectId(manifest.object) === objectId(patchObject));
      if (targets.length !== 1) throw new KustomizeError(`${source}: the patch's target ${objectId(patchObject)} is not among the resources`);
      const target = targets[0] as Manifest;
      target.object = strategicMerge(target.object as unknown as Json, patchObject as unknown as Json, '') as unknown as KubernetesObject;
      target.source = `${target.source} + ${source}`;
    }
  }
  for (const manifest of rendered) setImages(manifest.object, kustomization.images);
  return rendered;
}

/** `apiVersion/kind/name`: what identifies an object in a kustomization (no namespaces here). */
export function objectId(object: KubernetesObject): string {
  return `${object.apiVersion}/${object.kind}/${object.metadata.name}`;
}

/** `patch` merged into `target` (neither is modified), as a strategic merge patch; see the file's head. */
export function strategicMerge(target: Json, patch: Json, path: string): Json {
  if (!isRecord(patch) || !isRecord(target)) return structuredClone(patch);
  const merged: { [key: string]: Json } = structuredClone(target);
  for (const [key, value] of Object.entries(patch)) {
    const at = `${path}/${key}`;
    if (key.startsWith('$')) throw new KustomizeError(`${at}: the patch directive ${key} is not implemented`);
    if (value === null) {
      delete merged[key];
    } else if (Array.isArray(value)) {
      if (key === 'ports') throw new KustomizeError(`${at}: patching ports is not implemented (their merge key depends on the object)`);
      const mergeKey = MERGE_KEYS[key];
      const current = merged[key];
      merged[key] = mergeKey === undefined || !Array.isArray(current) ? structuredClone(value) : mergeList(current, value, mergeKey, at);
    } else {
      merged[key] = key in merged ? strategicMerge(merged[key] ?? null, value, at) : structuredClone(value);
    }
  }
  return merged;
}

function mergeList(current: Json[], patch: Json[], mergeKey: string, path: string): Json[] {
  const merged = structuredClone(current);
  for (const element of patch) {
    if (!isRecord(element) || typeof element[mergeKey] !== 'string') throw new KustomizeError(`${path}: every element needs its ${mergeKey}`);
    const index = merged.findIndex((candidate) => isRecord(candidate) && candidate[mergeKey] === element[mergeKey]);
    if (index < 0) merged.push(structuredClone(element));
    else merged[index] = strategicMerge(merged[index] ?? null, element, `${path}/${index}`);
  }
  return merged;
}

/** The kustomization's `images`: a container image named `name` (any tag) becomes newName:newTag. */
function setImages(object: KubernetesObject, images: readonly ImageEntry[]): void {
  const podSpec = (object['spec'] as { template?: { spec?: Record<string, unknown> } } | undefined)?.template?.spec;
  if (podSpec === undefined) return;
  for (const field of ['containers', 'initContainers']) {
    const containers = podSpec[field];
    if (!Array.isArray(containers)) continue;
    for (const container of containers as { image?: string }[]) {
      const image = container.image;
      if (image === undefined) continue;
      const name = image.split('@')[0]?.replace(/:[^:/]+$/, '') ?? image;
      const entry = images.find((candidate) => candidate.name === name);
      if (entry === undefined) continue;
      const tag = image.slice(name.length);
      const newName = entry.newName ?? name;
      container.image = entry.digest !== undefined ? `${newName}@${entry.digest}` : entry.newTag !== undefined ? `${newName}:${entry.newTag}` : `${newName}${tag}`;
    }
  }
}
