import { describe, expect, it } from 'vitest';
import { applyAgentV8Flags } from './v8-tuning';

describe('applyAgentV8Flags', () => {
  it('turns concurrent sweeping off unless the operator set it either way', () => {
    expect(applyAgentV8Flags('')).toEqual(['--no-concurrent-sweeping']);
    expect(applyAgentV8Flags('--max-old-space-size=512')).toEqual(['--no-concurrent-sweeping']);
    expect(applyAgentV8Flags('--concurrent-sweeping')).toEqual([]);
    expect(applyAgentV8Flags('--expose-gc --no-concurrent-sweeping')).toEqual([]);
    expect(applyAgentV8Flags('--concurrent_sweeping')).toEqual([]);
    // A longer flag that merely starts with the name is not the same flag.
    expect(applyAgentV8Flags('--concurrent-sweeping-extra')).toEqual(['--no-concurrent-sweeping']);
  });
});
