#!/usr/bin/env node
import { Command, Option } from 'commander';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, type LoadedConfig } from './config/load.js';
import { ScannodeNode } from './main.js';
import { echo, parsePeer } from './dimse/echo.js';

const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;

function configOption() {
  return new Option('-c, --config <file>', 'config file').env('SCANNODE_CONFIG').default(DEFAULT_CONFIG_FILE);
}

function load(file: string): LoadedConfig {
  try {
    return loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
}

const program = new Command('scannode')
  .description('A DICOM network node: receives, tracks, pulls and archives what the scanner produces.')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE))
  .showHelpAfterError();

program
  .command('start')
  .description('run the node (DICOM listener, scheduler, HTTP)')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    const loaded = load(opts.config);
    const node = new ScannodeNode(loaded);
    let signals = 0;
    const onSignal = (sig: string) => {
      signals++;
      if (signals > 1) {
        node.log.warn(`second ${sig}: exiting at once`);
        process.exit(EXIT_RUNTIME);
      }
      node.log.info(`${sig}: shutting down (send again to exit at once)`);
      node.stop().then(
        () => process.exit(0),
        () => process.exit(EXIT_RUNTIME),
      );
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    try {
      await node.start();
    } catch (err) {
      node.log.error('cannot start', { err: err instanceof Error ? err.message : String(err) });
      await node.stop();
      process.exit(EXIT_RUNTIME);
    }
  });

const config = program.command('config').description('configuration');
config
  .command('check')
  .description('validate the config and print the effective values (defaults and env overrides applied)')
  .addOption(configOption())
  .action((opts: { config: string }) => {
    const loaded = load(opts.config);
    process.stdout.write(
      `${JSON.stringify({ file: loaded.file, ...loaded.config, dataDir: loaded.dataDir }, null, 2)}\n`,
    );
  });

program
  .command('echo')
  .description('C-ECHO a DICOM node')
  .argument('<peer>', 'AET@HOST:PORT')
  .option('--aet <aet>', 'our calling AE title (default: dicom.aeTitle of the config)')
  .addOption(configOption())
  .action(async (spec: string, opts: { aet?: string; config: string }) => {
    let peer;
    try {
      peer = parsePeer(spec);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(EXIT_USAGE);
    }
    let aet = opts.aet;
    if (!aet) {
      try {
        aet = loadConfig(opts.config).config.dicom.aeTitle;
      } catch {
        aet = 'SCANNODE';
      }
    }
    try {
      const ms = await echo(peer, aet);
      process.stdout.write(`C-ECHO ${spec}: success (${ms} ms)\n`);
    } catch (err) {
      process.stderr.write(`C-ECHO ${spec}: ${(err as Error).message}\n`);
      process.exit(EXIT_RUNTIME);
    }
  });

await program.parseAsync(process.argv);
