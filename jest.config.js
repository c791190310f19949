/** Jest runs the TypeScript sources directly through swc; `npm run build` type-checks them. */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/__tests__"],
  testMatch: ["**/*.test.ts"],
  // The full learning proof takes ~40 minutes: `npm run test:learning` (jest.learning.config.js).
  testPathIgnorePatterns: ["/node_modules/", "/__tests__/learning/"],
  transform: { "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2022" }, module: { type: "commonjs" } }] },
  testTimeout: 120000,
  globalSetup: "<rootDir>/__tests__/global-setup.js",
};
