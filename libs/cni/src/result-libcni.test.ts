import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireCommands } from '@weft/testkit';

// An independent check of our goldens: Debian's libcni (golang-github-appc-cni-dev, spec ≤ 1.0.0)
// converts the same inputs; both must agree on every pair it knows.
const GOPATH = '/usr/share/gocode';
const LIBCNI = `${GOPATH}/src/github.com/containernetworking/cni/pkg/types/create`;
const CONVERTER = `package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/types/create"
	_ "github.com/containernetworking/cni/pkg/types/040"
	_ "github.com/containernetworking/cni/pkg/types/100"
)

func main() {
	data, _ := os.ReadFile(os.Args[1])
	r, err := create.Create(os.Args[2], data)
	if err != nil { fmt.Fprintln(os.Stderr, err); os.Exit(1) }
	out, err := r.GetAsVersion(os.Args[3])
	if err != nil { fmt.Fprintln(os.Stderr, err); os.Exit(1) }
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
`;
const dir = mkdtempSync(join(tmpdir(), 'wc-libcni-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const golden = (name: string) => JSON.parse(readFileSync(join(__dirname, 'golden', name), 'utf8'));

describe('goldens agree with libcni', () => {
  it('for every pair of 0.3.0, 0.3.1, 0.4.0, 1.0.0', { timeout: 240_000 }, (c) => {
    requireCommands(c, 'go', LIBCNI);
    writeFileSync(join(dir, 'main.go'), CONVERTER);
    const bin = join(dir, 'conv');
    execFileSync('go', ['build', '-o', bin, 'main.go'], {
      cwd: dir,
      env: {
        ...process.env,
        GO111MODULE: 'off',
        GOPATH,
        GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'wc-gocache'),
      },
      stdio: 'pipe',
    });
    const versions = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'];
    let compared = 0;
    for (const from of versions) {
      for (const to of versions) {
        const run = spawnSync(bin, [join(__dirname, 'golden', `result-${from}.json`), from, to], {
          encoding: 'utf8',
        });
        expect(run.status, run.stderr).toBe(0);
        expect(JSON.parse(run.stdout), `${from} -> ${to}`).toEqual(golden(`${from}-to-${to}.json`));
        compared++;
      }
    }
    expect(compared).toBe(16);
  });
});
