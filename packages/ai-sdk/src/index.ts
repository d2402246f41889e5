export { createAiSdkTools } from './create-ai-sdk-tools.js';
export type { AiSdkToolsOptions, NeedsApproval } from './create-ai-sdk-tools.js';
