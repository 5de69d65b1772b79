#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so the repository runs as checked out, with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
