/** Entry of the `weft-cni` plugin. */
export async function runWeftCni(): Promise<void> {
  process.stdout.write(JSON.stringify({ code: 4, msg: 'weft-cni: not built yet' }) + '\n');
  process.exitCode = 1;
}
