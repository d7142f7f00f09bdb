'use strict';
// The flow of mod_pegadm's GET /pegadm/session written the way Pega's Node.js
// samples do it: Express, jsonwebtoken, a keep-alive HTTPS agent towards the
// service, an in-memory Map as the session cache, Basic authentication
// checked in the application. Run as a cluster (WORKERS processes) on the
// same machine as httpd; a baseline for the benchmarks, not a product.
//
// Environment: PORT, WORKERS (default 2), SERVICE_URL, WIDGET_ID,
// SECRET_FILE, CA_FILE, USERS_FILE (lines "name:{SHA}base64").
//
// Behind a proxy that authenticates (httpd: mod_auth_basic, then mod_proxy),
// USER_HEADER names the request header carrying the authenticated user, e.g.
// X-Remote-User, and USERS_FILE is not read: the application trusts that
// header, so it must be reachable through the proxy only (it listens on
// 127.0.0.1).

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const express = require('express');
const jwt = require('jsonwebtoken');

const config = {
  port: Number(process.env.PORT),
  workers: Number(process.env.WORKERS || 2),
  serviceUrl: process.env.SERVICE_URL,
  widgetId: process.env.WIDGET_ID,
  secretFile: process.env.SECRET_FILE,
  caFile: process.env.CA_FILE,
  usersFile: process.env.USERS_FILE,
  userHeader: process.env.USER_HEADER || '',
  ttlMs: 1800 * 1000,
  timeoutMs: 5000,
};

function loadUsers(path) {
  const users = new Map();
  for (const line of fs.readFileSync(path, 'utf8').split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) {
      users.set(line.slice(0, at), line.slice(at + 1));
    }
  }
  return users;
}

// htpasswd's {SHA}: the same one SHA-1 per request that httpd pays.
function checkBasic(users, header) {
  if (!header || !header.startsWith('Basic ')) {
    return null;
  }
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const at = decoded.indexOf(':');
  const name = at > 0 ? decoded.slice(0, at) : '';
  const stored = users.get(name);
  if (!stored) {
    return null;
  }
  const given = Buffer.from('{SHA}' + crypto.createHash('sha1').update(decoded.slice(at + 1))
    .digest('base64'));
  const want = Buffer.from(stored);
  return given.length === want.length && crypto.timingSafeEqual(given, want) ? name : null;
}

function postJson(agent, url, token, body) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = https.request(url, {
      method: 'POST',
      agent,
      timeout: config.timeoutMs,
      headers: {
        'Authorization': 'Bearer ' + token,
        'Content-Type': 'application/json',
        'Content-Length': payload.length,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        if (res.statusCode < 200 || res.statusCode > 299) {
          reject(new Error('service answered ' + res.statusCode));
          return;
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('service timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

// Call 1 (create, iss = widget ID) then call 2 (private data, iss = session).
async function createSession(agent, secret, customerId) {
  const createToken = jwt.sign({ iss: config.widgetId }, secret, { expiresIn: 60 });
  const created = await postJson(agent, `${config.serviceUrl}/${config.widgetId}/create`,
    createToken, { customerId });
  if (typeof created.sessionId !== 'string') {
    throw new Error('no sessionId in the answer');
  }
  const dataToken = jwt.sign({ iss: created.sessionId }, secret, { expiresIn: 60 });
  await postJson(agent, `${config.serviceUrl}/private-data`, dataToken, { customerId });
  return created.sessionId;
}

function worker() {
  const secret = fs.readFileSync(config.secretFile, 'utf8').trim();
  const users = config.userHeader ? null : loadUsers(config.usersFile);
  const authenticated = config.userHeader
    ? (req) => req.get(config.userHeader) || null
    : (req) => checkBasic(users, req.get('Authorization'));
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 64,
    ca: fs.readFileSync(config.caFile),
  });
  const cache = new Map(); // customer -> {sessionId, expires}
  const pending = new Map(); // customer -> Promise, one create per customer at a time

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.get('/pegadm/session', async (req, res) => {
    const customerId = authenticated(req);
    res.set('Cache-Control', 'no-store');
    res.set('X-Content-Type-Options', 'nosniff');
    if (!customerId) {
      res.set('WWW-Authenticate', 'Basic realm="bench"');
      res.status(401).json({ error: 'unauthenticated', message: 'sign in first' });
      return;
    }
    const hit = cache.get(customerId);
    if (hit && hit.expires > Date.now()) {
      res.json({ sessionId: hit.sessionId, widgetId: config.widgetId });
      return;
    }
    let creating = pending.get(customerId);
    if (!creating) {
      creating = createSession(agent, secret, customerId)
        .finally(() => pending.delete(customerId));
      pending.set(customerId, creating);
    }
    try {
      const sessionId = await creating;
      cache.set(customerId, { sessionId, expires: Date.now() + config.ttlMs });
      res.json({ sessionId, widgetId: config.widgetId });
    } catch (err) {
      res.set('Retry-After', '5');
      res.status(503).json({ error: 'upstream_unavailable', message: err.message });
    }
  });
  app.listen(config.port, '127.0.0.1');
}

if (cluster.isPrimary) {
  for (let i = 0; i < config.workers; i++) {
    cluster.fork();
  }
  cluster.on('exit', (dead, code, signal) => {
    console.error(`worker ${dead.process.pid} exited (${signal || code})`);
  });
} else {
  worker();
}
