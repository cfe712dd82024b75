export { SandboxEngine } from './engine.js';
export type {
  Fault,
  FaultTarget,
  Grant as SandboxGrant,
  IssuedTokens,
  SandboxClient,
  SandboxCounters,
  SandboxSettings,
  SandboxUser,
} from './engine.js';
export type { RunningSandbox, SandboxServerOptions } from './server.js';
export { startOAuth2Sandbox } from './oauth2.js';
export type { OAuth2SandboxOptions } from './oauth2.js';
export { startDiSandbox } from './di/index.js';
export type { DiSandbox, DiSandboxOptions, DiWireSettings, DiRecordedRequest, DiCounters } from './di/index.js';
export { startSopSandbox } from './sop.js';
export type { SopSandboxOptions, SopSandboxApp, SopSandboxSettings, SopGatewayCounters, SopGatewayFault, RunningSopSandbox } from './sop.js';
export { startCnblogsSandbox } from './cnblogs/index.js';
export type {
  CnblogsSandbox,
  CnblogsSandboxOptions,
  CnblogsSandboxUser,
  IdTokenTamper,
  CnblogsSandboxFaultTarget,
  CnblogsSandboxCounters,
  CnblogsIssued,
  CnblogsSandboxClient,
  CnblogsSandboxResponseType,
} from './cnblogs/index.js';
