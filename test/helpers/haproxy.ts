/** haproxy in TCP mode, round robin over scannode nodes on 127.0.0.1: the configuration the cluster tests and bench use. */

/** `check`: haproxy probes each node every 300 ms and takes a dead one out after one failed probe. */
export function haproxyConfig(front: number, servers: Array<{ id: string; port: number }>, check = false): string {
  return [
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 120s',
    '  timeout server 120s',
    'frontend dicom',
    `  bind 127.0.0.1:${front}`,
    '  default_backend nodes',
    'backend nodes',
    '  balance roundrobin',
    ...servers.map((s) => `  server ${s.id} 127.0.0.1:${s.port}${check ? ' check inter 300ms fall 1 rise 2' : ''}`),
    '',
  ].join('\n');
}
