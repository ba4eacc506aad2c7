// Attaches endpoints as a separate process, then idles until killed: the test kills it with
// SIGKILL to show that enforcement does not depend on the process that set it up.
import { Datapath, type DatapathOptions, type EndpointSpec } from '../index';

const { options, endpoints } = JSON.parse(process.argv[2] ?? '{}') as {
  options: DatapathOptions;
  endpoints: EndpointSpec[];
};
const dp = Datapath.open(options);
for (const spec of endpoints) dp.attachEndpoint(spec);
process.stdout.write('attached\n');
setInterval(() => undefined, 60_000);
