/** `npm run test:learning`: the three-stage learning proof on a tiny model (~40 minutes on 2 cores). */
const base = require("./jest.config");

module.exports = { ...base, testPathIgnorePatterns: ["/node_modules/"], testMatch: ["**/__tests__/learning/*.test.ts"] };
