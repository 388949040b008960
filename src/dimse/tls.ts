/**
 * DICOM TLS (PS3.15 annex B): TLS 1.2 or later, certificates and keys from PEM files, for the
 * SCP's listener and for the SCU's connections (given to dcmjs-dimse's Client as its `securityOptions`).
 */
import fs from 'node:fs';
import type tls from 'node:tls';

export interface TlsServerFiles {
  /** PEM certificate chain and private key of this node. */
  cert: string;
  key: string;
  /** PEM CA certificate(s) trusted for client certificates. */
  ca?: string;
  /** Refuse a client that shows no certificate signed by `ca`. */
  requireClientCert: boolean;
}

export interface TlsClientFiles {
  /** PEM CA certificate(s) that signed the peer's certificate (default: the system's CAs). */
  ca?: string;
  /** Our certificate and key, when the peer asks for one. */
  cert?: string;
  key?: string;
}

/** The TLS options the SCU hands to the library: what dcmjs-dimse's Client passes on to `tls.connect`. */
export interface ClientSecurityOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  minVersion: 'TLSv1.2';
}

const MIN_VERSION = 'TLSv1.2';

function read(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the TLS ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export function serverTlsOptions(files: TlsServerFiles): tls.TlsOptions {
  if (files.requireClientCert && !files.ca)
    throw new Error('TLS: requireClientCert needs a ca to check clients against');
  return {
    cert: read(files.cert, 'certificate'),
    key: read(files.key, 'key'),
    ca: files.ca ? read(files.ca, 'CA certificate') : undefined,
    requestCert: files.requireClientCert,
    rejectUnauthorized: files.requireClientCert,
    minVersion: MIN_VERSION,
  };
}

export function clientTlsOptions(files: TlsClientFiles): ClientSecurityOptions {
  if ((files.cert === undefined) !== (files.key === undefined)) throw new Error('TLS: cert and key go together');
  return {
    ca: files.ca ? read(files.ca, 'CA certificate') : undefined,
    cert: files.cert ? read(files.cert, 'certificate') : undefined,
    key: files.key ? read(files.key, 'key') : undefined,
    minVersion: MIN_VERSION,
  };
}
