// Jest global set-up: make the dev-only Python oracle once per run and tell the tests where
// it is (CLARA_PYTHON), or why it is missing (CLARA_PYTHON_MISSING).
const { ensurePythonEnv } = require("../tools/setup/python-env");

module.exports = async () => {
  const { python, reason } = ensurePythonEnv({ log: (m) => process.stderr.write(`\n[global-setup] ${m}\n`) });
  if (python) process.env.CLARA_PYTHON = python;
  else process.env.CLARA_PYTHON_MISSING = reason;
};
