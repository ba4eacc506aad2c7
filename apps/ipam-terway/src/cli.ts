/** Stand-alone entry (tests bundle it to run the daemon as a separate, killable process). */
import { runWeftEni } from './main';

void runWeftEni();
