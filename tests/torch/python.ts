/** The Python the PyTorch tests run: the first interpreter that imports torch. */
import { execFileSync } from 'node:child_process';

/** $TTTC_PYTHON, python3 on PATH, or Debian's, whichever imports torch first. */
export function pythonWithTorch(): string {
  const candidates = [process.env.TTTC_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  for (const python of candidates) {
    try {
      execFileSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
      return python;
    } catch {
      // try the next one
    }
  }
  throw new Error(`no python3 imports torch (tried ${candidates.join(', ')}); install python3-torch`);
}
