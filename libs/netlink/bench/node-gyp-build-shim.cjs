// Stands in for `node-gyp-build` inside a bundle: the `netlink` package asks it for its native
// binding by directory, which no longer exists once bundled; @weft/native's loader knows where the
// binding lives (SEA asset, next to the bundle, or node_modules). Use as an esbuild alias:
//   alias: { 'node-gyp-build': '<repo>/libs/netlink/bench/node-gyp-build-shim.cjs' }
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { loadAddon } = require('@weft/native');
module.exports = () => loadAddon('netlink');
