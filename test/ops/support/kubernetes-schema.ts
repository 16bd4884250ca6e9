/**
 * Checks Kubernetes objects against the Kubernetes API, with kubernetes-models (the API's OpenAPI
 * schema compiled to validators and TypeScript types, tommy351/kubernetes-models-ts):
 *
 * - {@link schemaProblems}: the model's `validate()`, the OpenAPI schema with its types, enums,
 *   required fields and formats (a quantity, an int-or-string).
 * - {@link unknownFieldProblems}: fields the API does not have. The OpenAPI schema allows any
 *   extra property, so `readinesProbe:` would pass `validate()` while `kubectl apply` refuses it
 *   (strict field validation, kubectl's default since Kubernetes 1.25). Each object is compiled as a
 *   TypeScript literal of the model's generated interface, whose excess-property check names
 *   every unknown field; a patch is checked against a deep-partial of its interface.
 *
 * kubernetes-models 4.5 carries the Kubernetes 1.33 API; 5.x requires Node 22, this project 20.
 * Problems read `PATH: message`, PATH a JSON pointer into the object.
 */
import ts from 'typescript';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Service } from 'kubernetes-models/v1/Service';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { join } from 'node:path';
import type { KubernetesObject } from './kustomize.js';

/** How one kind is checked: its model's validator and its generated interface. */
interface KindModel {
  validate: (object: KubernetesObject) => void;
  /** The module and interface the unknown-field check types the object with. */
  module: string;
  typeName: string;
}

/** The kinds deploy/kubernetes uses, by `apiVersion/kind`. Another kind fails the checks by name. */
const MODELS: ReadonlyMap<string, KindModel> = new Map<string, KindModel>([
  ['apps/v1/StatefulSet', {
    validate: (object) => new StatefulSet(object).validate(),
    module: 'kubernetes-models/apps/v1/StatefulSet', typeName: 'IStatefulSet',
  }],
  ['v1/Service', {
    validate: (object) => new Service(object).validate(),
    module: 'kubernetes-models/v1/Service', typeName: 'IService',
  }],
  ['policy/v1/PodDisruptionBudget', {
    validate: (object) => new PodDisruptionBudget(object).validate(),
    module: 'kubernetes-models/policy/v1/PodDisruptionBudget', typeName: 'IPodDisruptionBudget',
  }],
]);

function modelOf(object: KubernetesObject): KindModel | undefined {
  return MODELS.get(`${object.apiVersion}/${object.kind}`);
}

/** What the OpenAPI schema says is wrong with `object` (empty when it is valid). */
export function schemaProblems(object: KubernetesObject): string[] {
  const model = modelOf(object);
  if (model === undefined) return [`/: no model for ${object.apiVersion} ${object.kind} (add it to test/ops/support/kubernetes-schema.ts)`];
  try {
    model.validate(object);
    return [];
  } catch (error) {
    const errors = (error as { errors?: unknown }).errors;
    if (!Array.isArray(errors)) throw error;
    return (errors as { instancePath: string; message?: string; params?: Record<string, unknown> }[]).map((problem) => {
      const detail = problem.params?.['allowedValues'] !== undefined ? ` (${JSON.stringify(problem.params['allowedValues'])})` : '';
      return `${problem.instancePath === '' ? '/' : problem.instancePath}: ${problem.message ?? 'invalid'}${detail}`;
    });
  }
}

/** One object for {@link unknownFieldProblems}: a whole object, or a patch (any field may be left out). */
export interface TypedDocument {
  object: KubernetesObject;
  partial: boolean;
}

/** Where the virtual source file lives: inside the repository, so `kubernetes-models` resolves. */
const VIRTUAL_FILE = 'test/ops/support/kubernetes-manifests.virtual.ts';

const COMPILER_OPTIONS: ts.CompilerOptions = {
  strict: true, noEmit: true, skipLibCheck: true, types: [], lib: ['lib.es5.d.ts'],
  target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
};

/** Parsed declaration files, kept across calls: only the virtual file changes. */
const sourceFileCache = new Map<string, ts.SourceFile>();

/**
 * The fields of each document the Kubernetes API does not have, and fields of the wrong type, as
 * TypeScript sees them against the generated interfaces: one list per document, in order.
 */
export function unknownFieldProblems(documents: readonly TypedDocument[], repoRoot: string): string[][] {
  const results: string[][] = documents.map(() => []);
  const lines = ['type DeepPartial<T> = T extends readonly (infer U)[] ? DeepPartial<U>[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;'];
  const imported = new Set<string>();
  documents.forEach(({ object, partial }, index) => {
    const model = modelOf(object);
    if (model === undefined) {
      results[index]?.push(`/: no model for ${object.apiVersion} ${object.kind}`);
      return;
    }
    if (!imported.has(model.module)) lines.unshift(`import type { ${model.typeName} } from '${model.module}';`);
    imported.add(model.module);
    const type = partial ? `DeepPartial<${model.typeName}>` : model.typeName;
    lines.push(`export const document${index}: ${type} = ${JSON.stringify(object, null, 1)};`);
  });
  const fileName = join(repoRoot, VIRTUAL_FILE);
  const text = lines.join('\n');
  const host = ts.createCompilerHost(COMPILER_OPTIONS);
  const readSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, languageVersion, onError, shouldCreate) => {
    if (name === fileName) return ts.createSourceFile(name, text, languageVersion, true);
    let cached = sourceFileCache.get(name);
    if (cached === undefined) {
      cached = readSourceFile(name, languageVersion, onError, shouldCreate);
      if (cached !== undefined) sourceFileCache.set(name, cached);
    }
    return cached;
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], COMPILER_OPTIONS, host);
  const virtual = program.getSourceFile(fileName);
  if (virtual === undefined) throw new Error('the virtual source file was not compiled');
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
    if (diagnostic.file !== virtual || diagnostic.start === undefined) throw new Error(`the unknown-field check itself failed: ${message}`);
    const { documentIndex, path } = locate(virtual, diagnostic.start);
    results[documentIndex]?.push(`${path === '' ? '/' : path}: ${message.replace(/'"([^"']+)"'/g, "'$1'")}`);
  }
  return results;
}

/** The document (`documentN`) and JSON pointer of the literal at `position`. */
function locate(file: ts.SourceFile, position: number): { documentIndex: number; path: string } {
  const segments: string[] = [];
  let documentIndex = -1;
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name)) documentIndex = Number(node.name.text.replace('document', ''));
    if (ts.isPropertyAssignment(node) && ts.isStringLiteral(node.name)) segments.push(node.name.text);
    if (ts.isArrayLiteralExpression(node)) {
      const index = node.elements.findIndex((element) => element.getStart(file) <= position && position < element.getEnd());
      if (index >= 0) segments.push(String(index));
    }
    const child = node.getChildren(file).find((candidate) => candidate.getStart(file) <= position && position < candidate.getEnd());
    if (child !== undefined) visit(child);
  };
  visit(file);
  return { documentIndex, path: segments.map((segment) => `/${segment}`).join('') };
}
