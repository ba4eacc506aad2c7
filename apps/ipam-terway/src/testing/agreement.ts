import { expect } from 'vitest';
import type { PoolState } from '../daemon/store';
import type { EcsEmulator } from '../emulator/ecs-emulator';
import { findDisagreements, INSTANCE_ID } from './env';

export function expectAgreement(emu: EcsEmulator, state: PoolState, instanceId = INSTANCE_ID): void {
  expect(findDisagreements(emu, state, instanceId)).toEqual([]);
}
