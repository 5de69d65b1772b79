/**
 * The dashboard (the origin's `GET /`): a static page (./dashboard/: index.html, app.js, style.css) and its
 * charting library, uPlot, served from the installed npm package. No build step and nothing from a CDN: the
 * page works wherever the origin's port is reachable, offline included. What the page reads and changes goes
 * through the control API and the events stream, under their access rules (the page asks for the control
 * token when a change needs it); the files themselves are public, like any static page.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Router } from 'express';

const HERE = join(dirname(fileURLToPath(import.meta.url)), 'dashboard');

/** uPlot's browser build and stylesheet in the installed package (the load-test report inlines them too). */
export function uplotFiles(): { js: string; css: string } {
  const dist = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
  return { js: join(dist, 'uPlot.iife.min.js'), css: join(dist, 'uPlot.min.css') };
}

/** Each served path, its file and content type. */
function files(): Record<string, { file: string; type: string }> {
  const uplot = uplotFiles();
  return {
    '/': { file: join(HERE, 'index.html'), type: 'text/html; charset=utf-8' },
    '/dashboard/app.js': { file: join(HERE, 'app.js'), type: 'text/javascript; charset=utf-8' },
    '/dashboard/style.css': { file: join(HERE, 'style.css'), type: 'text/css; charset=utf-8' },
    '/dashboard/vendor/uPlot.iife.min.js': { file: uplot.js, type: 'text/javascript; charset=utf-8' },
    '/dashboard/vendor/uPlot.min.css': { file: uplot.css, type: 'text/css; charset=utf-8' },
  };
}

export function dashboardRoutes(): Router {
  const r = express.Router();
  // Read once, at start-up: a missing file is an install problem, found before anyone opens the page.
  const served = Object.entries(files()).map(([path, f]) => ({ path, type: f.type, body: readFileSync(f.file) }));
  for (const f of served) {
    r.get(f.path, (_req, res) => {
      res
        .status(200)
        .type(f.type)
        .set('cache-control', 'no-cache')
        .set('x-content-type-options', 'nosniff')
        .set(
          'content-security-policy',
          "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
        )
        .send(f.body);
    });
  }
  return r;
}
