// The weft-agent entry for tests that run the agent as its own process (bundled by agent-process.ts).
import { runWeftAgent } from '../main';

void runWeftAgent();
