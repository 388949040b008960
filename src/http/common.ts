import type { Config } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { Importer } from '../pipeline/importer.js';

/** What the routes can use. A later issue adds its services here and registers its routes beside the imports. */
export interface HttpServices {
  http: Config['http'];
  dataDir: string;
  log: Logger;
  importer: Importer;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** A JSON error body: what went wrong, for people and programs. */
export function httpError(statusCode: number, message: string): Error & { statusCode: number } {
  return Object.assign(new Error(message), { statusCode });
}
