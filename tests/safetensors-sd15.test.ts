import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { sd15KohyaModules, unetParameters } from '../src/safetensors/sd15.js';

const MANIFEST = fileURLToPath(new URL('./fixtures/reference/sd15-key-manifest/sd1-kohya.yaml', import.meta.url));

interface KeyManifest {
  components: Record<string, Record<string, { shape: number[] }>>;
}

describe('SD1.5 UNet derived from its architecture', () => {
  const manifest = parse(readFileSync(MANIFEST, 'utf8')) as KeyManifest;
  const reference = new Map(Object.entries(manifest.components.diffuser).map(([k, v]) => [k.replace(/^unet\./, ''), v.shape]));

  it('has exactly the UNet keys and shapes of sd1-kohya.yaml', () => {
    const derived = unetParameters();
    expect(reference.size).toBe(686);
    expect([...derived.keys()].sort()).toEqual([...reference.keys()].sort());
    const wrong = [...derived].filter(([k, shape]) => JSON.stringify(shape) !== JSON.stringify(reference.get(k)));
    expect(wrong).toEqual([]);
  });

  it('names kohya LoRA modules after the diffusers paths', () => {
    const modules = sd15KohyaModules();
    const q = modules.get('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k');
    expect(q).toMatchObject({ path: 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k', kind: 'linear', shape: [320, 768], group: 'attention' });
    expect(modules.get('lora_unet_up_blocks_3_attentions_2_proj_out')).toMatchObject({ kind: 'conv', shape: [320, 320, 1, 1], group: 'proj' });
    // every Linear/Conv weight in the manifest is a module, and nothing else
    const weights = [...reference].filter(([k, s]) => k.endsWith('.weight') && s.length >= 2).map(([k]) => `lora_unet_${k.slice(0, -7).replace(/\./g, '_')}`);
    expect([...modules.keys()].sort()).toEqual(weights.sort());
    // 16 transformers x 2 attentions x 4 projections
    expect([...modules.values()].filter((m) => m.group === 'attention')).toHaveLength(128);
    expect([...modules.values()].filter((m) => m.group === 'proj')).toHaveLength(32);
  });
});
