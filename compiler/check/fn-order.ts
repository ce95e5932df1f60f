/**
 * The order to check fns in: every fn after the fns it calls, so that checking a call finds the
 * callee done and a chain of thousands of fns calling fns is never followed by recursion.
 * A call back into a fn still being ordered (a cycle) is left for the checker to report.
 */
import type { FnDecl } from '../syntax/ast.ts';
import { postorder } from '../syntax/walk.ts';
import type { LayerScope } from './scope.ts';

/** The fns a fn's body calls, in source order. */
function callees(fn: FnDecl, scope: LayerScope): FnDecl[] {
  const found: FnDecl[] = [];
  for (const root of [...fn.body.lets.map((l) => l.value), fn.body.result]) {
    postorder(root, (e) => {
      if (e.kind !== 'call') return;
      const symbol = scope.symbols.get(e.callee);
      if (symbol?.kind === 'fn') found.push(symbol);
    });
  }
  return found;
}

export function calleesFirst(scope: LayerScope): FnDecl[] {
  const order: FnDecl[] = [];
  const state = new Map<FnDecl, 'open' | 'done'>();
  for (const start of scope.fns) {
    if (state.has(start)) continue;
    const stack = [{ fn: start, next: callees(start, scope), i: 0 }];
    state.set(start, 'open');
    while (stack.length) {
      const top = stack[stack.length - 1];
      const callee = top.next[top.i++];
      if (callee === undefined) {
        stack.pop();
        state.set(top.fn, 'done');
        order.push(top.fn);
      } else if (!state.has(callee)) {
        state.set(callee, 'open');
        stack.push({ fn: callee, next: callees(callee, scope), i: 0 });
      }
    }
  }
  return order;
}
