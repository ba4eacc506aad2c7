export { privileged, requireCommands, requireKernelFeature, type SkipContext } from './privileged';
export { kernelHasLinkKind } from './privileged';
export { NetnsLineHelper, type HelperAnswer } from './netns-helper';
export { ScratchNetns, scratchName } from './scratch-netns';
export {
  parseVitestInVm,
  REPO_ROOT,
  requireVm,
  runInVm,
  runVitestInVm,
  shellQuote,
  vitestInVmCommand,
  VM_RUNNER,
  VM_VITEST_ARGS,
  logVmVitest,
  vmRunnerAvailable,
  vmTestsOf,
  type VmAvailability,
  type VmResult,
  type VmRunOptions,
  type VmTest,
  type VmVitestOptions,
  type VmVitestResult,
} from './vm-runner';
