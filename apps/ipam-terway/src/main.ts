/**
 * `weft-eni`, one name for two programs:
 *   weft-eni daemon [--config FILE] [--socket PATH] [--state-dir DIR]   the ENI daemon
 *   CNI_COMMAND=ADD|DEL|CHECK|GC|STATUS|VERSION weft-eni < netconf      the IPAM plugin
 *   weft-eni emulator [--port N] [--instance-type T]                    a local ECS + metadata emulator
 */
import { loadConfigFile, defaultConfig, type EniDaemonConfig } from './daemon/config';
import { EniDaemon } from './daemon/daemon';
import { stderrLog } from './daemon/log';
import { EcsEmulator } from './emulator/ecs-emulator';
import { runEniIpamPlugin } from './plugin/eni-ipam-plugin';

const USAGE = `usage:
  weft-eni daemon [--config FILE] [--socket PATH] [--state-dir DIR]
  weft-eni emulator [--port N] [--instance-type TYPE]
  CNI_COMMAND=... weft-eni < netconf     (IPAM plugin)
`;

function flags(args: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else out.set(a.slice(2), args[++i] ?? '');
  }
  return out;
}

async function runDaemon(args: string[]): Promise<void> {
  const log = stderrLog('weft-eni');
  const f = flags(args);
  let config: EniDaemonConfig = defaultConfig();
  const file = f.get('config');
  if (file) {
    const loaded = loadConfigFile(file);
    config = loaded.config;
    if (loaded.ignored.length > 0) log.warn('Terway keys without effect in weft', { keys: loaded.ignored });
  }
  if (f.has('socket')) config.socketPath = f.get('socket')!;
  if (f.has('state-dir')) config.stateDir = f.get('state-dir')!;
  config.ecs.accessKeyId ||= process.env.ALIBABA_CLOUD_ACCESS_KEY_ID ?? '';
  config.ecs.accessKeySecret ||= process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET ?? '';
  const daemon = await EniDaemon.start(config, { log });
  const stop = () => {
    log.info('stopping');
    void daemon.stop().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function runEmulator(args: string[]): Promise<void> {
  const f = flags(args);
  const emu = await new EcsEmulator({
    port: Number(f.get('port') ?? 0),
    regionId: 'cn-hangzhou',
    vpcId: 'vpc-weft-dev',
    vSwitches: [
      { id: 'vsw-dev-a', zoneId: 'cn-hangzhou-k', cidr: '10.80.0.0/20', ipv6Cidr: '2408:4005:80::/64' },
      { id: 'vsw-dev-b', zoneId: 'cn-hangzhou-k', cidr: '10.81.0.0/20', ipv6Cidr: '2408:4005:81::/64' },
    ],
    securityGroups: ['sg-weft-dev'],
    instances: [
      {
        id: 'i-weftdev',
        instanceType: f.get('instance-type') ?? 'ecs.g7.4xlarge',
        zoneId: 'cn-hangzhou-k',
        vSwitchId: 'vsw-dev-a',
      },
    ],
  }).start();
  process.stdout.write(
    JSON.stringify({
      endpoint: emu.endpoint,
      metadata: emu.url,
      accessKeyId: 'weft-test-ak',
      accessKeySecret: 'weft-test-secret',
    }) + '\n',
  );
  const stop = () => void emu.close().finally(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

export async function runWeftEni(argv: string[] = process.argv.slice(2)): Promise<void> {
  try {
    if (argv[0] === 'daemon') return await runDaemon(argv.slice(1));
    if (argv[0] === 'emulator') return await runEmulator(argv.slice(1));
    if (process.env.CNI_COMMAND) {
      process.exitCode = await runEniIpamPlugin();
      return;
    }
    process.stderr.write(USAGE);
    process.exitCode = 2;
  } catch (err) {
    process.stderr.write(`weft-eni: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
