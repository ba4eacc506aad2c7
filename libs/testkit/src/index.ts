export { privileged, requireCommands, requireKernelFeature, type SkipContext } from './privileged';
export { ScratchNetns, scratchName } from './scratch-netns';
