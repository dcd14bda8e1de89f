import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * An HTTP proxy in front of a registry that misbehaves on purpose: by rules, it answers an
 * error status (500, 503, 429 with Retry-After, 403…), resets the connection, or sends a
 * response's headers and only part of its body before cutting the connection. Every request
 * is logged with its Range header, so a test can see that a resume happened.
 */

export type FaultAction =
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  | { kind: 'reset' }
  | { kind: 'truncate'; afterBytes: number };

export interface FaultRule {
  method?: string;
  /** Matched against the request path and query. */
  path?: RegExp;
  /** Only requests with (true) or without (false) a Range header. */
  ranged?: boolean;
  /** How many matching requests it applies to (default 1); it is spent after that. */
  times?: number;
  /** Let this many matching requests through untouched first (default 0). */
  skip?: number;
  action: FaultAction;
}

export interface ProxyLogEntry {
  method: string;
  url: string;
  range: string | undefined;
  /** The fault applied, if any. */
  fault: FaultAction['kind'] | undefined;
  /** Status sent to the client (undefined for a reset). */
  status: number | undefined;
}

export interface FaultProxy {
  host: string;
  url: string;
  /** Rules are consulted in order; add or clear them between steps. */
  rules: FaultRule[];
  log: ProxyLogEntry[];
  stop(): Promise<void>;
}

function takeRule(rules: FaultRule[], req: IncomingMessage): FaultRule | undefined {
  for (const [i, rule] of rules.entries()) {
    if (rule.method !== undefined && rule.method !== req.method) continue;
    if (rule.path !== undefined && !rule.path.test(req.url ?? '')) continue;
    if (rule.ranged !== undefined && rule.ranged !== (req.headers.range !== undefined)) continue;
    if (rule.skip !== undefined && rule.skip > 0) {
      rule.skip--;
      return undefined;
    }
    const left = (rule.times ?? 1) - 1;
    if (left <= 0) rules.splice(i, 1);
    else rule.times = left;
    return rule;
  }
  return undefined;
}

/** Starts a proxy forwarding to `target` (`host:port`). */
export async function startFaultProxy(target: string, rules: FaultRule[] = []): Promise<FaultProxy> {
  const [targetHost, targetPort] = target.split(':') as [string, string];
  const upstream = new Agent({ keepAlive: true });
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const entry: ProxyLogEntry = { method: req.method ?? 'GET', url: req.url ?? '/', range: req.headers.range, fault: undefined, status: undefined };
    log.push(entry);
    const rule = takeRule(rules, req);
    if (rule?.action.kind === 'reset') {
      entry.fault = 'reset';
      req.socket.resetAndDestroy();
      return;
    }
    if (rule?.action.kind === 'status') {
      const action = rule.action;
      entry.fault = 'status';
      entry.status = action.status;
      // Drain the request body before answering so the client sees the status, not a broken pipe.
      req.resume();
      req.on('end', () => {
        const body = action.body ?? JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected HTTP ${action.status}` }] });
        res.writeHead(action.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...action.headers });
        res.end(body);
      });
      return;
    }
    const up = httpRequest({ host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: req.headers, agent: upstream }, (upRes) => {
      entry.status = upRes.statusCode;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (rule?.action.kind === 'truncate') {
        entry.fault = 'truncate';
        let left = rule.action.afterBytes;
        upRes.on('data', (chunk: Buffer) => {
          if (left <= 0) return;
          const part = chunk.subarray(0, left);
          left -= part.length;
          res.write(part);
          if (left <= 0) {
            upRes.destroy();
            // Flush what was written, then cut the connection mid-body.
            res.socket?.end(() => res.socket?.destroy());
          }
        });
        upRes.on('end', () => res.socket?.destroy());
        return;
      }
      upRes.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  };

  const server = createServer(handle);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    rules,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        upstream.destroy();
        server.close(() => resolve());
      }),
  };
}
