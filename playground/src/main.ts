/** The playground page: the editor, the compiler's panels, the run and the shared link, wired together. */
import './style.css';
import { CodeView, languageOf } from './code-view.ts';
import { createSpecEditor } from './editor.ts';
import { RunPanel } from './run-panel.ts';
import { decodeState, encodeState, type PageState } from './share.ts';
import type { SequenceOptions } from './synthetic.ts';
import { analyse, type CompiledLayer, type FormRequest, type LayerSummary, type PlaygroundDiagnostic } from './tttc.ts';

/** Every example of the repository, bundled at build time: the page fetches nothing. */
const EXAMPLES: Record<string, string> = Object.fromEntries(
  Object.entries(
    import.meta.glob<string>('../../examples/*.ttt', { query: '?raw', import: 'default', eager: true }),
  ).map(([path, text]) => [path.split('/').pop()!, text]),
);
const DEFAULT_EXAMPLE = 'ttt_linear.ttt';
const DEFAULT_RUN: SequenceOptions = { B: 1, H: 2, T: 64, seed: 1, map: 'linear', noise: 0.1, lr: 0.03 };

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

type Tab = 'check' | 'grad' | 'wgsl' | 'cuda' | 'run';

class Playground {
  private state: PageState;
  private layer?: CompiledLayer;
  private diagnostics: PlaygroundDiagnostic[] = [];
  private tab: Tab = 'check';
  /** Which panels show the current layer already. */
  private rendered = new Set<Tab>();
  private timer?: ReturnType<typeof setTimeout>;
  private saveTimer?: ReturnType<typeof setTimeout>;
  private readonly editor;
  private readonly grad: CodeView;
  private readonly wgsl: CodeView;
  private readonly cuda: CodeView;
  private readonly run: RunPanel;

  constructor(initial: PageState) {
    this.state = initial;
    const mark = (line: number) => this.editor.markLine(line);
    this.editor = createSpecEditor($('editor'), initial.spec, (text) => {
      this.state.spec = text;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.analyse(), 150);
    });
    this.grad = new CodeView($('panel-grad'), mark);
    this.wgsl = new CodeView($('panel-wgsl'), mark);
    this.cuda = new CodeView($('panel-cuda'), mark);
    this.run = new RunPanel(initial.run, (run) => {
      this.state.run = run;
      this.saveSoon();
    });

    const example = $<HTMLSelectElement>('example');
    example.append(new Option('(choose)', ''), ...Object.keys(EXAMPLES).map((name) => new Option(name, name)));
    example.value = EXAMPLES[initial.file] === initial.spec ? initial.file : '';
    example.addEventListener('change', () => {
      if (!example.value) return;
      this.state.file = example.value;
      this.state.dims = {};
      $<HTMLInputElement>('file').value = example.value;
      this.editor.setText(EXAMPLES[example.value]);
      this.analyse();
    });
    const file = $<HTMLInputElement>('file');
    file.value = initial.file;
    file.addEventListener('change', () => {
      this.state.file = file.value.trim() || 'spec.ttt';
      this.analyse();
    });
    const form = $<HTMLSelectElement>('form');
    form.value = initial.form;
    form.addEventListener('change', () => {
      this.state.form = form.value as FormRequest;
      this.analyse();
    });
    $('cuda-file').addEventListener('change', () => this.renderCuda());
    for (const b of document.querySelectorAll<HTMLButtonElement>('#tabs button'))
      b.addEventListener('click', () => this.show(b.dataset.tab as Tab));
    $('share').addEventListener('click', () => void this.share());
    this.show('check');
    this.analyse();
  }

  /** Keep the address bar's link in step with the page, so a reload or a copied URL reproduces it. */
  private saveSoon(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => void this.save(), 400);
  }

  private async save(): Promise<void> {
    clearTimeout(this.saveTimer);
    history.replaceState(null, '', await encodeState(this.state));
  }

  private analyse(): void {
    clearTimeout(this.timer);
    this.saveSoon();
    const result = analyse(this.state.spec, { file: this.state.file, dims: this.state.dims, form: this.state.form });
    this.diagnostics = result.diagnostics;
    this.editor.setDiagnostics(result.diagnostics);
    $('stale').hidden = !!result.layer || !this.layer;
    if (result.layer) this.layer = result.layer;
    this.showProblems();
    // The size controls stay, from the last layer that compiled, so a bad -D value can be fixed.
    if (this.layer) this.showSizes(this.layer.summary);
    if (result.layer) {
      this.rendered.clear();
      this.run.setLayer(result.layer);
      this.renderTab();
    }
  }

  private showProblems(): void {
    const list = $('problems');
    if (!this.diagnostics.length) {
      const ok = document.createElement('li');
      ok.className = 'ok';
      ok.textContent = `${this.layer?.summary.name ?? 'spec'}: ok`;
      list.replaceChildren(ok);
      return;
    }
    list.replaceChildren(
      ...this.diagnostics.map((d) => {
        const li = document.createElement('li');
        li.dataset.code = d.code;
        const code = document.createElement('span');
        code.className = 'code';
        code.textContent = `${d.severity} ${d.code}`;
        const hint = document.createElement('span');
        hint.className = 'hint';
        hint.textContent = `hint: ${d.hint}`;
        li.append(code, ` ${d.line}:${d.col}: ${d.message}`, hint);
        li.addEventListener('click', () => {
          this.editor.view.dispatch({ selection: { anchor: d.from, head: d.to }, scrollIntoView: true });
          this.editor.view.focus();
        });
        return li;
      }),
    );
  }

  /** One control per dim and the minibatch, like `-D NAME=VALUE`; an unchanged value is no override. */
  private showSizes(summary: LayerSummary): void {
    const host = $('sizes');
    host.replaceChildren(
      ...summary.sizes.map((s) => {
        const label = document.createElement('label');
        const input = document.createElement('input');
        input.type = 'number';
        input.min = '1';
        input.name = s.name;
        input.value = String(this.state.dims[s.name] ?? s.value);
        label.title = s.minibatch ? 'the minibatch size (-D)' : 'a dim (-D)';
        if (s.name in this.state.dims) label.classList.add('changed');
        input.addEventListener('change', () => {
          const value = Number(input.value);
          if (input.value === '') delete this.state.dims[s.name];
          else this.state.dims[s.name] = value;
          this.analyse();
        });
        label.append(`-D ${s.name} `, input);
        return label;
      }),
    );
    if (Object.keys(this.state.dims).length) {
      const reset = document.createElement('button');
      reset.type = 'button';
      reset.textContent = 'reset sizes';
      reset.addEventListener('click', () => {
        this.state.dims = {};
        this.analyse();
      });
      host.append(reset);
    }
  }

  private show(tab: Tab): void {
    this.tab = tab;
    for (const b of document.querySelectorAll<HTMLButtonElement>('#tabs button'))
      b.setAttribute('aria-selected', String(b.dataset.tab === tab));
    for (const t of ['check', 'grad', 'wgsl', 'cuda', 'run']) $(`panel-${t}`).hidden = t !== tab;
    // Opening the Run tab starts building the kernels; edits made while it is open do not.
    if (tab === 'run') this.run.prepare();
    this.renderTab();
  }

  /** Panels render on demand: typing only checks the spec; the code is generated when looked at. */
  private renderTab(): void {
    const layer = this.layer;
    if (!layer || this.rendered.has(this.tab)) return;
    this.rendered.add(this.tab);
    switch (this.tab) {
      case 'check':
        renderSummary($('panel-check'), layer.summary);
        break;
      case 'grad': {
        const code = layer.gradient();
        this.grad.show(code.text, code.specLines, 'plain');
        break;
      }
      case 'wgsl': {
        const code = layer.wgsl();
        this.wgsl.show(code.text, code.specLines, 'wgsl');
        break;
      }
      case 'cuda':
        this.renderCuda();
        break;
      case 'run':
        break;
    }
  }

  private renderCuda(): void {
    if (!this.layer) return;
    const files = this.layer.cuda();
    const select = $<HTMLSelectElement>('cuda-file');
    const chosen = select.value;
    select.replaceChildren(...files.map((f) => new Option(f.path, f.path)));
    const file = files.find((f) => f.path === chosen) ?? files[0];
    select.value = file.path;
    this.cuda.show(file.text, file.specLines, languageOf(file.path));
  }

  private async share(): Promise<void> {
    await this.save();
    const status = $('share-status');
    try {
      await navigator.clipboard.writeText(location.href);
      status.textContent = 'link copied';
    } catch {
      status.textContent = 'link in the address bar';
    }
  }
}

function renderSummary(host: HTMLElement, s: LayerSummary): void {
  const shape = (x: readonly number[]) => `[${x.join(', ')}]`;
  const tensors = (list: { name: string; shape: readonly number[] }[]) =>
    list.map((t) => `${t.name} ${shape(t.shape)}`).join(', ') || '(none)';
  const rows: [string, string | HTMLElement][] = [
    ['layer', `${s.name}: ok`],
    [
      'dims',
      s.sizes
        .filter((d) => !d.minibatch)
        .map((d) => `${d.name} = ${d.value}`)
        .join(', ') + `; minibatch ${s.sizes.find((d) => d.minibatch)?.name} = ${s.K}`,
    ],
    ['state', tensors(s.states)],
    ['params', tensors(s.params)],
    ['views', `${tensors([...s.lossViews, ...s.outputViews])} (loss: ${s.lossViews.map((v) => v.name).join(', ')})`],
    ['output', shape(s.output)],
    [
      'update',
      `sgd, lr ${s.lr.kind === 'token' ? 'per token' : s.lr.value}, scale ${s.scale.kind === 'constant' ? s.scale.value : s.scale.kind}`,
    ],
  ];
  const forms = document.createElement('div');
  for (const f of s.forms) {
    const line = document.createElement('div');
    line.textContent = `${f.state.padEnd(8)} ${f.form}`;
    if (f.why) {
      const why = document.createElement('span');
      why.className = 'why';
      why.textContent = `  (${f.why.code}: ${f.why.message}, at line ${f.why.line})`;
      line.append(why);
    }
    forms.append(line);
  }
  rows.push(['form', forms]);
  const table = document.createElement('table');
  table.className = 'summary';
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    const th = document.createElement('th');
    th.textContent = k;
    const td = tr.insertCell();
    td.append(v);
    tr.prepend(th);
  }
  host.replaceChildren(table);
}

async function initialState(): Promise<{ state: PageState; error?: string }> {
  const fallback: PageState = {
    file: DEFAULT_EXAMPLE,
    spec: EXAMPLES[DEFAULT_EXAMPLE],
    dims: {},
    form: 'auto',
    run: { ...DEFAULT_RUN },
  };
  try {
    const shared = await decodeState(location.hash);
    if (!shared) return { state: fallback };
    return {
      state: {
        file: typeof shared.file === 'string' ? shared.file : 'shared.ttt',
        spec: typeof shared.spec === 'string' ? shared.spec : fallback.spec,
        dims: shared.dims && typeof shared.dims === 'object' ? { ...shared.dims } : {},
        form: shared.form === 'primal' || shared.form === 'dual' ? shared.form : 'auto',
        run: { ...DEFAULT_RUN, ...shared.run },
      },
    };
  } catch (e) {
    return {
      state: fallback,
      error: `The link's page state could not be read (${e instanceof Error ? e.message : e}); showing the default.`,
    };
  }
}

void initialState().then(({ state, error }) => {
  new Playground(state);
  if (error) $('share-status').textContent = error;
});
