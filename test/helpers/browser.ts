// The status page's browser: Debian's Chromium through playwright-core.
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium, as root in a closed network: no sandbox, no background connections, a fresh profile. */
export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}
