// Loaders for what a no-op run must not load: the YAML parser (config/yaml-module.ts) and zod.
// Positions for diagnostics parse the lorafile only when a diagnostic needs one.
import { YamlLocator } from './locate.js';
import type { Config } from './schema.js';
import { yamlModule } from './yaml-module.js';
import { packageRequire } from '../package-root.js';

const locators = new WeakMap<Config, YamlLocator>();

/** the locator of a loaded lorafile (parsed again, once, when a diagnostic asks for a position) */
export function locatorOf(config: Config): YamlLocator | undefined {
  let locator = locators.get(config);
  if (!locator && typeof config.source === 'string') {
    const { LineCounter, parseDocument } = yamlModule();
    const lineCounter = new LineCounter();
    const doc = parseDocument(config.source, { lineCounter, uniqueKeys: false, prettyErrors: false });
    locator = new YamlLocator(doc, lineCounter, config.source);
    locators.set(config, locator);
  }
  return locator;
}

/** the locator config/load.ts made while parsing, kept for locatorOf */
export function rememberLocator(config: Config, locator: YamlLocator): void {
  locators.set(config, locator);
}

/** the zod package, loaded on first use */
export function zodModule(): typeof import('zod') {
  return packageRequire('zod') as typeof import('zod');
}
