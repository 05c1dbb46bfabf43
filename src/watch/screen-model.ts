// The state a human screen draws: each stage's last outcome, each dataset's diagnostics and
// whether they are current or stale. Pure bookkeeping, shared by the TTY and plain screens.
import type { Diagnostic } from '../config/diagnostic.js';
import type { StageEvent } from '../engine/types.js';
import type { WatchEvent } from './events.js';

export interface DatasetView {
  status: 'current' | 'stale' | 'unvalidated';
  diagnostics: Diagnostic[];
  errors: number;
  warnings: number;
  note?: string;
}

export class ScreenModel {
  readonly stages = new Map<string, { line: StageEvent; running: boolean }>();
  readonly datasets = new Map<string, DatasetView>();
  state = 'starting';
  build = 0;
  lastChange: string | undefined;
  configProblem: Diagnostic[] = [];
  lastVerdict: string | undefined;

  stage(e: StageEvent): void {
    if (e.item !== undefined) return;
    if (e.outcome === 'started') this.stages.set(e.stage, { line: e, running: true });
    else if (e.progress) this.stages.set(e.stage, { line: e, running: true });
    else if (e.outcome) this.stages.set(e.stage, { line: e, running: false });
  }

  watch(e: WatchEvent): void {
    switch (e.watch) {
      case 'change':
        this.lastChange = e.path;
        break;
      case 'stale': {
        const view = this.datasets.get(e.dataset);
        if (view) view.status = 'stale';
        break;
      }
      case 'build':
        // stage lines describe the current build only
        this.stages.clear();
        this.build = e.build;
        this.state = 'building';
        break;
      case 'queued':
        this.state = 'building (rerun queued)';
        break;
      case 'config-error':
        this.configProblem = e.diagnostics as unknown as Diagnostic[];
        break;
      case 'replanned':
        this.configProblem = [];
        for (const id of [...this.stages.keys()]) if (!e.stages.includes(id)) this.stages.delete(id);
        break;
      case 'diagnostics':
        this.datasets.set(e.dataset, { status: e.stale ? 'stale' : 'current', diagnostics: e.diagnostics as unknown as Diagnostic[], errors: e.errors, warnings: e.warnings });
        break;
      case 'unvalidated': {
        const before = this.datasets.get(e.dataset);
        this.datasets.set(e.dataset, { status: 'unvalidated', diagnostics: before?.diagnostics ?? [], errors: before?.errors ?? 0, warnings: before?.warnings ?? 0, note: e.reason });
        break;
      }
      case 'waiting':
        this.state = `waiting for ${e.holder}`;
        break;
      case 'idle':
        this.state = 'watching';
        this.lastVerdict = e.verdict;
        break;
      case 'stopped':
        this.state = 'stopped';
        break;
      default:
        break;
    }
  }
}
