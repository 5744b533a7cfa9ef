import { expect } from 'chai';
import { PROFILES } from '../frontend/profiles.js';
import { profileNegotiations } from './features.js';
import { BLOCK_OFFER, BLOCK_PROTOCOL } from './testing.js';

describe('abi profile negotiations', () => {
  it('records every profile, without VHOST_F_LOG_ALL, and with bit 30 only where the profile uses it', () => {
    const all = profileNegotiations(BLOCK_OFFER, BLOCK_PROTOCOL, 'block');
    expect(Object.keys(all)).to.deep.equal(PROFILES.map((p) => p.name));
    for (const n of Object.values(all)) expect(n.virtioFeatures.names).not.to.include('VHOST_F_LOG_ALL');
    expect(all.qemu!.virtioFeatures.names).to.include('VHOST_USER_F_PROTOCOL_FEATURES');
    expect(all.qemu!.protocolFeatures.names).to.include.members(['LOG_SHMFD', 'INFLIGHT_SHMFD', 'CONFIG']);
    expect(all['qemu-legacy']!.virtioFeatures.names).not.to.include('VHOST_USER_F_PROTOCOL_FEATURES');
    expect(all['qemu-legacy']!.protocolFeatures.names).to.deep.equal([]);
  });

  it('negotiates no protocol feature with a back-end that does not offer bit 30', () => {
    const legacy = profileNegotiations(BLOCK_OFFER & ~(1n << 30n), null, 'block');
    expect(legacy.qemu!.protocolFeatures.hex).to.equal('0x0000000000000000');
  });
});
