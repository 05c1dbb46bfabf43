"""lorabuild's compute worker: self-contained SD1.x in PyTorch (UNet, VAE, CLIP-L text encoder),
its own safetensors reader/writer, LoRA training and a JSON-lines server (``python -m lorabuild_worker``).

Module map (other engineers build on these paths):
  safetensors_io  read (mmap, header checked) / write (atomic) .safetensors
  configs         SD15, TINY and TOY model configs (same architecture code)
  nn/             unet.UNet, vae.AutoencoderKL, clip.CLIPTextModel
  checkpoint      load_sd1(path) -> SD1 (unet, encode_images, decode_latents, encode_text, alphas_cumprod)
  lora            inject/save LoRA (kohya names) and apply_lora_file() for sampling
  diffusers_names LDM -> diffusers module paths (kohya key names)
  models          get_sd1(): a one-entry cache of the last loaded model, shared by ops
  images          load_square() / load_cover(): decode, orient, flatten alpha, resize + center-crop
  samplers/       ComfyUI's KSampler: discrete model sampling, schedulers, samplers, per-cell noise, CFG
  prompt          encode_prompt(): 75-token chunks and weights relative to the empty prompt (sd1_clip's rule)
  train           the training loop (deterministic, resumable)
  ops/<op>.py     one module per protocol op, each with run(args, ctx) -> dict
  bench           python -m lorabuild_worker.bench: training it/s and peak memory
"""

# Bump when a change alters numbers a stage caches (latents, contexts, LoRA weights).
WORKER_VERSION = "0.2.1"  # 0.2.1: builtin tiny reads CLIP ids (vocabulary 49408)
