export { createLangChainTools } from './create-langchain-tools.js';
