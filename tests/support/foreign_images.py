"""A collection of images as other generators write them, each with the values a reader
should find: for the readers' tests (`tests/interop`) and the fuzzer (`bench/`).

Each file is made the way its generator's writer makes it (see `foreign_writers`), with
settings like the ones those tools record. `collection()` builds them in memory (small
pictures: 8x8, 128x128 where pixels hide text); `write_collection(folder)` writes them.
Expected values are what the file's writer wrote (sampler and model names verbatim);
None or "" where a file holds no value, or one no one should believe (a seed of -5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.foreign_writers import (
    comfyui_exif,
    comfyui_workflow,
    itxt_chunk,
    jpeg_with_app1,
    picture,
    piexif_user_comment,
    pillow_png,
    pillow_save,
    png_with_chunks,
    text_chunk,
    with_stealth,
)

FIELDS = (
    "source_format",
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "guidance",
    "width",
    "height",
    "model",
    "sampler",
)


@dataclass(frozen=True)
class ForeignImage:
    name: str  # file name
    generator: str
    data: bytes
    expected: dict[str, Any]  # every name in FIELDS
    notes: tuple[str, ...] = ()  # words each expected note contains
    fuzz: bool = True  # small enough to mutate a million times

    def wrong_fields(self, found: dict[str, Any]) -> list[str]:
        """The fields `found` (ParsedMetadata.to_dict()) gets wrong."""
        return [name for name in FIELDS if found.get(name) != self.expected[name]]


def expect(source_format: str, **values: Any) -> dict[str, Any]:
    """Expected values: strings default to "", numbers to None."""
    defaults: dict[str, Any] = {name: None for name in FIELDS}
    defaults |= {"prompt": "", "negative_prompt": "", "model": "", "sampler": ""}
    unknown = values.keys() - defaults.keys()
    assert not unknown, unknown
    return defaults | values | {"source_format": source_format}


def write_collection(folder: Path) -> list[tuple[Path, ForeignImage]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for image in collection():
        path = folder / image.name
        path.write_bytes(image.data)
        written.append((path, image))
    return written


def collection() -> list[ForeignImage]:
    return [
        *a1111(),
        *forge(),
        *comfyui(),
        *image_saver(),
        *swarmui(),
        *fooocus(),
        *novelai(),
        *invokeai(),
        *stability_matrix(),
        *civitai(),
        *easy_diffusion(),
        *odd_writers(),
    ]


def generators() -> set[str]:
    """The generators the collection holds files of (not counting hand-damaged files, nor
    a JPEG comment, which no one generator is known for)."""
    return {image.generator for image in collection()} - {"damaged", "jpeg-comment"}


# --------------------------------------------------------------------------- A1111


def a1111_text(prompt: str, negative: str, settings: str) -> str:
    lines = [prompt, f"Negative prompt: {negative}" if negative else None, settings]
    return "\n".join(line for line in lines if line is not None)


A1111_SETTINGS = (
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567890, Size: 512x768, "
    "Model hash: 879db523c3, Model: dreamshaper_8, Clip skip: 2, Version: v1.10.1"
)


def a1111() -> list[ForeignImage]:
    name = "a1111"
    plain = a1111_text(
        "a lighthouse on a cliff at dusk, oil painting", "blurry, lowres", A1111_SETTINGS
    )
    plain_expected = expect(
        "parameters",
        prompt="a lighthouse on a cliff at dusk, oil painting",
        negative_prompt="blurry, lowres",
        seed=1234567890,
        steps=28,
        guidance=6.5,
        width=512,
        height=768,
        model="dreamshaper_8",
        sampler="DPM++ 2M Karras",
    )
    unicode_prompt = "一只狐狸 in the snow 🦊, (masterpiece:1.2)"
    unicode_text = a1111_text(unicode_prompt, "ぼやけた", A1111_SETTINGS)
    hires = a1111_text(
        "portrait of a knight, <lora:detail_tweaker:0.6>",
        "",
        "Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 42, "
        "Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: "
        '0.4, Hires upscale: 2, Hires upscaler: Latent, Lora hashes: "detail_tweaker: '
        'e4f7bd1f1c", TI hashes: "easynegative: c74b4e810b", Version: v1.9.4',
    )
    multi_line = a1111_text(
        "first line of the prompt,\nsecond line: with a colon",
        "",
        "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 0, Size: 640x448, Model: anything-v5",
    )
    stealth_text = a1111_text("a hidden red fox", "bad hands", A1111_SETTINGS)
    stealth_rgb_text = (
        "a hidden blue jay\nSteps: 12, Sampler: UniPC, CFG scale: 4, Seed: 77, Size: 128x128"
    )
    return [
        ForeignImage(
            "a1111_txt2img.png", name, pillow_png([("parameters", plain)]), plain_expected
        ),
        ForeignImage(
            "a1111_unicode.png",
            name,
            pillow_png([("parameters", unicode_text)]),  # not Latin-1: Pillow writes iTXt
            plain_expected | {"prompt": unicode_prompt, "negative_prompt": "ぼやけた"},
        ),
        ForeignImage(
            "a1111_hires_lora.png",
            name,
            pillow_png([("parameters", hires)]),
            expect(
                "parameters",
                prompt="portrait of a knight, <lora:detail_tweaker:0.6>",
                seed=42,
                steps=30,
                guidance=7.0,
                width=512,
                height=512,
                model="v1-5-pruned-emaonly",
                sampler="Euler a",
            ),
        ),
        ForeignImage(
            "a1111_multi_line.png",
            name,
            pillow_png([("parameters", multi_line)]),
            expect(
                "parameters",
                prompt="first line of the prompt,\nsecond line: with a colon",
                seed=0,
                steps=20,
                guidance=7.0,
                width=640,
                height=448,
                model="anything-v5",
                sampler="Euler",
            ),
        ),
        ForeignImage("a1111.jpg", name, jpeg_with_app1(piexif_user_comment(plain)), plain_expected),
        ForeignImage(
            "a1111.webp",
            name,
            pillow_save(fmt="WEBP", exif=piexif_user_comment(unicode_text), lossless=True),
            plain_expected | {"prompt": unicode_prompt, "negative_prompt": "ぼやけた"},
        ),
        ForeignImage(
            "a1111_stealth_alpha.png",  # a site stripped the text chunks; pixels kept
            name,
            pillow_save(with_stealth(picture((128, 128)), stealth_text), "PNG"),
            plain_expected | {"prompt": "a hidden red fox", "negative_prompt": "bad hands"},
            notes=("hidden in the pixels",),
        ),
        ForeignImage(
            "a1111_stealth_rgb.png",
            name,
            pillow_save(
                with_stealth(picture((128, 128)), stealth_rgb_text, mode="rgb", compressed=False),
                "PNG",
            ),
            expect(
                "parameters",
                prompt="a hidden blue jay",
                seed=77,
                steps=12,
                guidance=4.0,
                width=128,
                height=128,
                sampler="UniPC",
            ),
            notes=("hidden in the pixels",),
        ),
    ]


def forge() -> list[ForeignImage]:
    flux = a1111_text(
        "a neon sign that says 'open late', rainy street",
        "",
        "Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: "
        "3.5, Seed: 2851243367, Size: 896x1152, Model hash: bea01d51bd, Model: "
        "flux1-dev-bnb-nf4-v2, Version: f2.0.1v1.10.1-previous-313-g2a2c6a3, Module 1: ae",
    )
    flux_expected = expect(
        "parameters",
        prompt="a neon sign that says 'open late', rainy street",
        seed=2851243367,
        steps=20,
        guidance=1.0,
        width=896,
        height=1152,
        model="flux1-dev-bnb-nf4-v2",
        sampler="Euler",
    )
    return [
        ForeignImage("forge_flux.png", "forge", pillow_png([("parameters", flux)]), flux_expected),
        ForeignImage(
            "forge_flux.jpg", "forge", jpeg_with_app1(piexif_user_comment(flux)), flux_expected
        ),
    ]


# --------------------------------------------------------------------------- ComfyUI

COMFY_WIDGETS = {  # ComfyUI's widget order, for the front end's saved workflows
    "KSampler": [
        "seed",
        "control_after_generate",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "denoise",
    ],
    "CLIPTextEncode": ["text"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "EmptySD3LatentImage": ["width", "height", "batch_size"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "UNETLoader": ["unet_name", "weight_dtype"],
    "RandomNoise": ["noise_seed", "control_after_generate"],
    "KSamplerSelect": ["sampler_name"],
    "BasicScheduler": ["scheduler", "steps", "denoise"],
    "FluxGuidance": ["guidance"],
    "CFGGuider": ["cfg"],
    "SaveImage": ["filename_prefix"],
}


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"inputs": inputs, "class_type": class_type, "_meta": {"title": class_type}}


def basic_graph() -> dict[str, Any]:
    """ComfyUI's default workflow, as its `prompt` chunk holds it."""
    return {
        "3": node(
            "KSampler",
            seed=156680208700286,
            steps=20,
            cfg=8,
            sampler_name="euler",
            scheduler="normal",
            denoise=1,
            model=["4", 0],
            positive=["6", 0],
            negative=["7", 0],
            latent_image=["5", 0],
        ),
        "4": node("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors"),
        "5": node("EmptyLatentImage", width=512, height=512, batch_size=1),
        "6": node(
            "CLIPTextEncode",
            text="beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
            clip=["4", 1],
        ),
        "7": node("CLIPTextEncode", text="text, watermark", clip=["4", 1]),
        "8": node("VAEDecode", samples=["3", 0], vae=["4", 2]),
        "9": node("SaveImage", filename_prefix="ComfyUI", images=["8", 0]),
    }


BASIC_EXPECTED = expect(
    "comfyui",
    prompt="beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
    negative_prompt="text, watermark",
    seed=156680208700286,
    steps=20,
    guidance=8.0,
    width=512,
    height=512,
    model="v1-5-pruned-emaonly.safetensors",
    sampler="euler",
)


def flux_graph(guider: str = "basic") -> dict[str, Any]:
    """ComfyUI's Flux example: SamplerCustomAdvanced, its noise, guider, sampler and sigmas
    each a node; guidance from FluxGuidance."""
    graph = {
        "6": node(
            "CLIPTextEncode",
            text="a tiny astronaut hatching from an egg on the moon",
            clip=["11", 0],
        ),
        "8": node("VAEDecode", samples=["13", 0], vae=["10", 0]),
        "9": node("SaveImage", filename_prefix="ComfyUI", images=["8", 0]),
        "10": node("VAELoader", vae_name="ae.safetensors"),
        "11": node(
            "DualCLIPLoader",
            clip_name1="t5xxl_fp16.safetensors",
            clip_name2="clip_l.safetensors",
            type="flux",
        ),
        "12": node("UNETLoader", unet_name="flux1-dev.safetensors", weight_dtype="default"),
        "13": node(
            "SamplerCustomAdvanced",
            noise=["25", 0],
            guider=["22", 0],
            sampler=["16", 0],
            sigmas=["17", 0],
            latent_image=["27", 0],
        ),
        "16": node("KSamplerSelect", sampler_name="euler"),
        "17": node("BasicScheduler", scheduler="simple", steps=20, denoise=1, model=["30", 0]),
        "22": node("BasicGuider", model=["30", 0], conditioning=["26", 0]),
        "25": node("RandomNoise", noise_seed=219670278747233),
        "26": node("FluxGuidance", guidance=3.5, conditioning=["6", 0]),
        "27": node("EmptySD3LatentImage", width=1024, height=768, batch_size=1),
        "30": node(
            "ModelSamplingFlux",
            max_shift=1.15,
            base_shift=0.5,
            width=1024,
            height=768,
            model=["12", 0],
        ),
    }
    if guider == "cfg":  # a negative that is the positive zeroed out, and a CFG of its own
        graph["22"] = node(
            "CFGGuider", model=["30", 0], positive=["26", 0], negative=["33", 0], cfg=1.5
        )
        graph["33"] = node("ConditioningZeroOut", conditioning=["6", 0])
    return graph


FLUX_EXPECTED = expect(
    "comfyui",
    prompt="a tiny astronaut hatching from an egg on the moon",
    seed=219670278747233,
    steps=20,
    guidance=3.5,
    width=1024,
    height=768,
    model="flux1-dev.safetensors",
    sampler="euler",
)


def sd3_graph() -> dict[str, Any]:
    """CFGGuider with a real negative prompt, a checkpoint, a scheduler of its own."""
    return {
        "4": node("CheckpointLoaderSimple", ckpt_name="sd3.5_medium.safetensors"),
        "6": node("CLIPTextEncode", text="a fox made of autumn leaves", clip=["4", 1]),
        "7": node("CLIPTextEncode", text="photo, realistic", clip=["4", 1]),
        "10": node("CFGGuider", model=["4", 0], positive=["6", 0], negative=["7", 0], cfg=4.5),
        "11": node("RandomNoise", noise_seed=8),
        "12": node("KSamplerSelect", sampler_name="dpmpp_2m"),
        "13": node("BasicScheduler", model=["4", 0], scheduler="sgm_uniform", steps=40, denoise=1),
        "14": node("EmptySD3LatentImage", width=1152, height=896, batch_size=1),
        "15": node(
            "SamplerCustomAdvanced",
            noise=["11", 0],
            guider=["10", 0],
            sampler=["12", 0],
            sigmas=["13", 0],
            latent_image=["14", 0],
        ),
        "16": node("VAEDecode", samples=["15", 0], vae=["4", 2]),
        "17": node("SaveImage", filename_prefix="sd35", images=["16", 0]),
    }


def area_graph() -> dict[str, Any]:
    """Area composition: the combine's first input is an area prompt, the second the prompt
    of the whole picture."""
    graph = basic_graph()
    graph["10"] = node("ConditioningCombine", conditioning_1=["11", 0], conditioning_2=["12", 0])
    graph["11"] = node(
        "ConditioningSetArea", conditioning=["13", 0], width=256, height=512, x=0, y=0, strength=1.0
    )
    graph["12"] = node("CLIPTextEncode", text="a castle on a hill, masterpiece", clip=["4", 1])
    graph["13"] = node("CLIPTextEncode", text="a full moon in a night sky", clip=["4", 1])
    graph["3"]["inputs"]["positive"] = ["10", 0]
    graph["5"]["inputs"] |= {"width": 768, "height": 512}
    return graph


def hires_graph() -> dict[str, Any]:
    """Two passes: the hires sampler (added first, lower id) starts from the first pass's
    upscaled latent; the first pass starts from an empty latent."""
    graph = basic_graph()
    graph["2"] = node(
        "KSampler",
        seed=5,
        steps=12,
        cfg=5,
        sampler_name="dpmpp_2m",
        scheduler="karras",
        denoise=0.5,
        model=["4", 0],
        positive=["6", 0],
        negative=["7", 0],
        latent_image=["10", 0],
    )
    graph["10"] = node(
        "LatentUpscale",
        samples=["3", 0],
        upscale_method="nearest-exact",
        width=1024,
        height=1024,
        crop="disabled",
    )
    graph["8"]["inputs"]["samples"] = ["2", 0]
    return graph


def lora_graph() -> dict[str, Any]:
    """A LoRA between checkpoint and sampler, the seed from a custom seed node."""
    graph = basic_graph()
    graph["20"] = node(
        "LoraLoader",
        lora_name="add_detail.safetensors",
        strength_model=0.7,
        strength_clip=0.7,
        model=["4", 0],
        clip=["4", 1],
    )
    graph["21"] = node("Seed (rgthree)", seed=987654321)
    graph["3"]["inputs"] |= {"model": ["20", 0], "seed": ["21", 0]}
    return graph


def comfy_png(graph: dict[str, Any], workflow: bool = True, prompt: bool = True) -> bytes:
    """ComfyUI's SaveImage: `prompt` then each extra_pnginfo entry (`workflow`), json.dumps."""
    texts = [("prompt", json.dumps(graph))] if prompt else []
    if workflow:
        texts.append(("workflow", json.dumps(comfyui_workflow(graph, COMFY_WIDGETS))))
    return pillow_png(texts)


def comfyui() -> list[ForeignImage]:
    name = "comfyui"
    webp_exif = comfyui_exif(
        basic_graph(), {"workflow": comfyui_workflow(basic_graph(), COMFY_WIDGETS)}
    )
    return [
        ForeignImage("ComfyUI_00001_.png", name, comfy_png(basic_graph()), BASIC_EXPECTED),
        ForeignImage(
            "comfyui_workflow_only.png",
            name,
            comfy_png(basic_graph(), prompt=False),
            BASIC_EXPECTED,
        ),
        ForeignImage("comfyui_flux.png", name, comfy_png(flux_graph()), FLUX_EXPECTED),
        ForeignImage(
            "comfyui_flux_workflow_only.png",
            name,
            comfy_png(flux_graph(), prompt=False),
            FLUX_EXPECTED,
        ),
        ForeignImage(
            "comfyui_flux_cfg_guider.png",
            name,
            comfy_png(flux_graph("cfg")),
            FLUX_EXPECTED | {"guidance": 1.5},
        ),
        ForeignImage(
            "comfyui_sd35.png",
            name,
            comfy_png(sd3_graph()),
            expect(
                "comfyui",
                prompt="a fox made of autumn leaves",
                negative_prompt="photo, realistic",
                seed=8,
                steps=40,
                guidance=4.5,
                width=1152,
                height=896,
                model="sd3.5_medium.safetensors",
                sampler="dpmpp_2m",
            ),
        ),
        ForeignImage(
            "comfyui_area.png",
            name,
            comfy_png(area_graph()),
            BASIC_EXPECTED
            | {"prompt": "a castle on a hill, masterpiece", "width": 768, "height": 512},
        ),
        ForeignImage("comfyui_hires.png", name, comfy_png(hires_graph()), BASIC_EXPECTED),
        ForeignImage(
            "comfyui_lora_seed_node.png",
            name,
            comfy_png(lora_graph(), workflow=False),
            BASIC_EXPECTED | {"seed": 987654321},
        ),
        ForeignImage(
            "ComfyUI_00002_.webp",
            name,
            pillow_save(fmt="WEBP", exif=webp_exif, lossless=False, quality=80),
            BASIC_EXPECTED,
        ),
        ForeignImage(
            "comfyui_saver.jpg",  # a custom JPEG saver using the WebP saver's EXIF tags
            name,
            pillow_save(fmt="JPEG", exif=comfyui_exif(flux_graph(), {}), quality=90),
            FLUX_EXPECTED,
        ),
    ]


def image_saver_text(positive: str, negative: str, seed: int, size: tuple[int, int]) -> str:
    """comfy-image-saver's text: whitespace flattened, "CFG Scale" with a capital S, the
    sampler and scheduler joined, the model's name without its extension."""
    return (
        f"{positive}\nNegative prompt: {negative}\nSteps: 20, Sampler: dpmpp_2m_karras, CFG Scale: "
        f"7.0, Seed: {seed}, Size: {size[0]}x{size[1]}, Model hash: 31e35c80fc, Model: "
        "sd_xl_base_1.0, Version: ComfyUI"
    )


def saver_graph(connected: bool) -> dict[str, Any]:
    graph = basic_graph()
    graph["3"]["inputs"] |= {
        "seed": 1122334455,
        "steps": 20,
        "cfg": 7.0,
        "sampler_name": "dpmpp_2m",
        "scheduler": "karras",
    }
    graph["4"]["inputs"]["ckpt_name"] = "sd_xl_base_1.0.safetensors"
    graph["5"]["inputs"] |= {"width": 1024, "height": 1024}
    saver = node(
        "Save Image w/Metadata",
        filename="%time_%seed",
        path="",
        extension="png",
        steps=20,
        cfg=7.0,
        modelname="sd_xl_base_1.0.safetensors",
        sampler_name="dpmpp_2m",
        scheduler="karras",
        positive="unknown",
        negative="unknown",
        seed_value=0,
        width=512,
        height=512,
        images=["8", 0],
    )
    if connected:
        saver["inputs"] |= {"positive": ["6", 0], "negative": ["7", 0], "seed_value": ["3", 0]}
    graph["9"] = saver
    return graph


def image_saver() -> list[ForeignImage]:
    name = "comfy-image-saver"
    prompt = "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"
    placeholder = image_saver_text("unknown", "unknown", 0, (512, 512))
    connected = image_saver_text(prompt, "text, watermark", 1122334455, (1024, 1024))
    graph_values = BASIC_EXPECTED | {
        "seed": 1122334455,
        "guidance": 7.0,
        "width": 1024,
        "height": 1024,
        "model": "sd_xl_base_1.0.safetensors",
        "sampler": "dpmpp_2m",
    }
    text_values = graph_values | {
        "source_format": "parameters",
        "model": "sd_xl_base_1.0",
        "sampler": "dpmpp_2m_karras",
    }

    def saved(text: str, graph: dict[str, Any]) -> bytes:
        workflow = comfyui_workflow(graph, COMFY_WIDGETS)
        return pillow_png(
            [
                ("parameters", text),
                ("prompt", json.dumps(graph)),
                ("workflow", json.dumps(workflow)),
            ]
        )

    return [
        ForeignImage(
            "imagesaver_placeholders.png",
            name,
            saved(placeholder, saver_graph(False)),
            graph_values,
        ),
        ForeignImage(
            "imagesaver_connected.png", name, saved(connected, saver_graph(True)), text_values
        ),
        ForeignImage(
            "imagesaver.jpg", name, jpeg_with_app1(piexif_user_comment(connected)), text_values
        ),
    ]


# --------------------------------------------------------------------------- SwarmUI, Fooocus


def swarm_json(params: dict[str, Any]) -> str:
    """SwarmUI's metadata: Newtonsoft's indented JSON."""
    return json.dumps(
        {
            "sui_image_params": params,
            "sui_models": [
                {"name": f"{params['model']}.safetensors", "param": "model", "hash": "0x31e35c80"}
            ],
        },
        indent=2,
        ensure_ascii=False,
    )


def swarmui() -> list[ForeignImage]:
    name = "swarmui"
    params = {
        "prompt": "a café terrace at night, watercolor, <segment:face>",
        "negativeprompt": "blurry",
        "model": "OfficialStableDiffusion/sd_xl_base_1.0",
        "seed": 1598349127,
        "steps": 30,
        "cfgscale": 6.5,
        "aspectratio": "Custom",
        "width": 1344,
        "height": 768,
        "sampler": "dpmpp_2m",
        "scheduler": "karras",
        "automaticvae": True,
        "swarm_version": "0.9.4.0",
        "date": "2024-12-01",
        "generation_time": "0.01 (prep) and 5.62 (gen) seconds",
    }
    flux = params | {
        "prompt": "a paper boat on a puddle",
        "negativeprompt": "",
        "model": "Flux/flux1-schnell-fp8",
        "seed": 4611686018427387904,
        "steps": 4,
        "cfgscale": 1,
        "width": 1024,
        "height": 1024,
        "sampler": "euler",
        "scheduler": "simple",
    }
    expected = expect(
        "swarmui",
        prompt=params["prompt"],
        negative_prompt="blurry",
        seed=1598349127,
        steps=30,
        guidance=6.5,
        width=1344,
        height=768,
        model="OfficialStableDiffusion/sd_xl_base_1.0",
        sampler="dpmpp_2m",
    )
    return [
        # .NET writes UTF-8 into the tEXt chunk
        ForeignImage(
            "swarmui.png",
            name,
            png_with_chunks([text_chunk("parameters", swarm_json(params), "utf-8")]),
            expected,
        ),
        ForeignImage(
            "swarmui_flux.png",
            name,
            png_with_chunks(
                [text_chunk("parameters", swarm_json(flux), "utf-8")], after_pixels=True
            ),
            expected
            | {
                "prompt": "a paper boat on a puddle",
                "negative_prompt": "",
                "model": "Flux/flux1-schnell-fp8",
                "seed": 4611686018427387904,
                "steps": 4,
                "guidance": 1.0,
                "width": 1024,
                "height": 1024,
                "sampler": "euler",
            },
        ),
    ]


def fooocus() -> list[ForeignImage]:
    name = "fooocus"
    metadata = {
        "adm_guidance": "(1.5, 0.8, 0.3)",
        "base_model": "juggernautXL_v8Rundiffusion.safetensors",
        "base_model_hash": "aeb7e9e689",
        "full_negative_prompt": ["(worst quality, low quality, normal quality:2)"],
        "full_prompt": ["a cat in a spacesuit, intricate, elegant, highly detailed"],
        "guidance_scale": 4.0,
        "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1, "4852686128"]],
        "metadata_scheme": "fooocus",
        "negative_prompt": "",
        "performance": "Speed",
        "prompt": "a cat in a spacesuit",
        "prompt_expansion": "a cat in a spacesuit, intricate, elegant, highly detailed",
        "refiner_model": "None",
        "refiner_switch": 0.5,
        "resolution": "(1152, 896)",
        "sampler": "dpmpp_2m_sde_gpu",
        "scheduler": "karras",
        "seed": "7340329018473740321",
        "sharpness": 2.0,
        "steps": 30,
        "styles": "['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']",
        "vae": "Default (model)",
        "version": "Fooocus v2.5.5",
    }
    text = json.dumps(dict(sorted(metadata.items())))
    expected = expect(
        "fooocus",
        prompt="a cat in a spacesuit",
        seed=7340329018473740321,
        steps=30,
        guidance=4.0,
        width=1152,
        height=896,
        model="juggernautXL_v8Rundiffusion.safetensors",
        sampler="dpmpp_2m_sde_gpu",
    )
    exif = picture().getexif()  # Fooocus's get_exif(): all in IFD0, UserComment as text
    exif[0x9286] = text
    exif[0x0131] = "Fooocus v2.5.5"
    exif[0x927C] = "fooocus"
    a1111_scheme = a1111_text(
        "a cat in a spacesuit",
        "",
        "Steps: 30, Sampler: DPM++ 2M SDE Karras, Seed: 7340329018473740321, CFG scale: 4, "
        "Size: 1152x896, Model: juggernautXL_v8Rundiffusion, Model hash: aeb7e9e689, Sharpness: "
        "2, Performance: Speed, Version: Fooocus v2.5.5",
    )
    return [
        ForeignImage(
            "fooocus.png",
            name,
            pillow_png([("parameters", text), ("fooocus_scheme", "fooocus")]),
            expected,
        ),
        ForeignImage("fooocus.jpg", name, pillow_save(fmt="JPEG", exif=exif, quality=95), expected),
        ForeignImage(
            "fooocus_a1111_scheme.png",
            name,
            pillow_png([("parameters", a1111_scheme), ("fooocus_scheme", "a1111")]),
            expected
            | {
                "source_format": "parameters",
                "model": "juggernautXL_v8Rundiffusion",
                "sampler": "DPM++ 2M SDE Karras",
            },
        ),
    ]


# --------------------------------------------------------------------------- NovelAI


def novelai_comment(**changes: Any) -> dict[str, Any]:
    comment = {
        "prompt": "1girl, #テスト, cherry blossoms, best quality",
        "steps": 28,
        "height": 1216,
        "width": 832,
        "scale": 5.0,
        "uncond_scale": 0.0,
        "cfg_rescale": 0.0,
        "seed": 2946843425,
        "n_samples": 1,
        "hide_debug_overlay": False,
        "noise_schedule": "native",
        "legacy_v3_extend": False,
        "reference_information_extracted_multiple": [],
        "reference_strength_multiple": [],
        "sampler": "k_euler_ancestral",
        "controlnet_strength": 1.0,
        "controlnet_model": None,
        "dynamic_thresholding": False,
        "sm": False,
        "sm_dyn": False,
        "skip_cfg_below_sigma": 0.0,
        "lora_unet_weights": None,
        "lora_clip_weights": None,
        "uc": "lowres, bad anatomy, ぼやけ",
        "request_type": "PromptGenerateRequest",
        "signed_hash": "wr2Ig6fBYIHWmR5vmXTrJbyuNdaMsO2d0A1LeRwD3X9VEMeTMnlqu8ztRu"
        "vhdDDdt1SJr3Xhp8Ct5CqKrHCGCw==",
    }
    return comment | changes


def novelai_chunks(comment: dict[str, Any], source: str, description: str) -> list[tuple[str, str]]:
    return [
        ("Title", "NovelAI generated image"),
        ("Description", description),
        ("Software", "NovelAI"),
        ("Source", source),
        ("Generation time", "6.216"),
        ("Comment", json.dumps(comment, ensure_ascii=False)),
    ]


def novelai() -> list[ForeignImage]:
    name = "novelai"
    v3 = novelai_comment()
    v3_chunks = novelai_chunks(v3, "Stable Diffusion XL C1E1DE52", v3["prompt"])
    v3_expected = expect(
        "novelai",
        prompt="1girl, #テスト, cherry blossoms, best quality",
        negative_prompt="lowres, bad anatomy, ぼやけ",
        seed=2946843425,
        steps=28,
        guidance=5.0,
        width=832,
        height=1216,
        model="Stable Diffusion XL C1E1DE52",
        sampler="k_euler_ancestral",
    )
    v4 = novelai_comment(
        prompt="2girls, picnic, sunny meadow",
        uc="blurry, lowres",
        seed=913371,
        scale=6.0,
        width=1024,
        height=1024,
        v4_prompt={
            "caption": {
                "base_caption": "2girls, picnic, sunny meadow",
                "char_captions": [
                    {"char_caption": "girl, red hair", "centers": [{"x": 0.3, "y": 0.5}]}
                ],
            },
            "use_coords": True,
            "use_order": True,
        },
        v4_negative_prompt={
            "caption": {"base_caption": "blurry, lowres", "char_captions": []},
            "legacy_uc": False,
        },
    )
    v4_chunks = novelai_chunks(
        v4, "NovelAI Diffusion V4.5 4BDE2A90", "2girls, picnic, sunny meadow"
    )
    v4_expected = v3_expected | {
        "prompt": "2girls, picnic, sunny meadow",
        "negative_prompt": "blurry, lowres",
        "seed": 913371,
        "guidance": 6.0,
        "width": 1024,
        "height": 1024,
        "model": "NovelAI Diffusion V4.5 4BDE2A90",
    }
    # What NovelAI hides in the alpha channel: the chunks as one JSON object, gzipped.
    hidden = json.dumps(dict(v3_chunks))
    stealth = with_stealth(picture((128, 128), "RGBA"), hidden)
    return [
        # NovelAI writes its chunks as tEXt holding UTF-8
        ForeignImage(
            "novelai_v3.png",
            name,
            png_with_chunks([text_chunk(k, v, "utf-8") for k, v in v3_chunks]),
            v3_expected,
        ),
        ForeignImage(
            "novelai_v4.png",
            name,
            png_with_chunks([text_chunk(k, v, "utf-8") for k, v in v4_chunks]),
            v4_expected,
        ),
        ForeignImage(
            "novelai_stealth.png",
            name,
            pillow_save(stealth, "PNG"),
            v3_expected,
            notes=("hidden in the pixels",),
        ),
        ForeignImage(
            "novelai_comment_as_parameters.png",  # the settings alone, copied into `parameters`
            name,
            pillow_png([("parameters", json.dumps(v3))]),
            v3_expected | {"model": ""},
        ),
    ]


# --------------------------------------------------------------------------- InvokeAI


def invokeai() -> list[ForeignImage]:
    dream = (
        '"a lighthouse on a cliff, oil painting [blurry, lowres]" -s 50 -S 3357757885 -W 768 '
        "-H 512 -C 7.5 -A k_lms"
    )
    metadata = {
        "model": "stable diffusion",
        "model_weights": "stable-diffusion-1.5",
        "model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
        "app_id": "invoke-ai/InvokeAI",
        "app_version": "2.2.5",
        "image": {
            "prompt": [
                {"prompt": "a lighthouse on a cliff, oil painting [blurry, lowres]", "weight": 1.0}
            ],
            "steps": 50,
            "cfg_scale": 7.5,
            "threshold": 0,
            "perlin": 0,
            "height": 512,
            "width": 768,
            "seed": 3357757885,
            "seamless": False,
            "hires_fix": False,
            "type": "txt2img",
            "postprocessing": None,
            "sampler": "k_lms",
            "variations": [],
        },
    }
    v2_expected = expect(
        "invokeai",
        prompt="a lighthouse on a cliff, oil painting",
        negative_prompt="blurry, lowres",
        seed=3357757885,
        steps=50,
        guidance=7.5,
        width=768,
        height=512,
        model="stable-diffusion-1.5",
        sampler="k_lms",
    )
    v4 = {
        "app_version": "4.2.4",
        "generation_mode": "txt2img",
        "positive_prompt": "a watercolor fox",
        "negative_prompt": "photo",
        "width": 768,
        "height": 512,
        "seed": 356120443,
        "rand_device": "cpu",
        "cfg_scale": 7.5,
        "cfg_rescale_multiplier": 0,
        "steps": 30,
        "scheduler": "dpmpp_2m_k",
        "model": {
            "key": "4f1a",
            "hash": "blake3:abcd",
            "name": "dreamshaper-8",
            "base": "sd-1",
            "type": "main",
        },
    }
    v3 = v4 | {
        "app_version": "3.6.2",
        "model": {"model_name": "amixx", "base_model": "sd-1", "model_type": "main"},
    }
    v4_expected = expect(
        "invokeai",
        prompt="a watercolor fox",
        negative_prompt="photo",
        seed=356120443,
        steps=30,
        guidance=7.5,
        width=768,
        height=512,
        model="dreamshaper-8",
        sampler="dpmpp_2m_k",
    )
    return [
        ForeignImage(
            "invokeai2.png",
            "invokeai-2",
            pillow_png([("Dream", dream), ("sd-metadata", json.dumps(metadata))]),
            v2_expected,
        ),
        ForeignImage(
            "invokeai2_dream_only.png",  # the "dream" script before sd-metadata
            "invokeai-2",
            pillow_png(
                [("Dream", '"a cat wearing a hat" -s 50 -W 512 -H 512 -C 7.5 -A k_lms -S 1234')]
            ),
            expect(
                "invokeai",
                prompt="a cat wearing a hat",
                seed=1234,
                steps=50,
                guidance=7.5,
                width=512,
                height=512,
                sampler="k_lms",
            ),
        ),
        ForeignImage(
            "invokeai4.png",
            "invokeai",
            pillow_png(
                [
                    ("invokeai_metadata", json.dumps(v4)),
                    ("invokeai_graph", json.dumps({"id": "g", "nodes": {}})),
                ]
            ),
            v4_expected,
        ),
        ForeignImage(
            "invokeai3.png",
            "invokeai",
            pillow_png([("invokeai_metadata", json.dumps(v3))]),
            v4_expected | {"model": "amixx"},
        ),
    ]


# ------------------------------------------------- Stability Matrix, Civitai, Easy Diffusion


def stability_matrix() -> list[ForeignImage]:
    params = {
        "PositivePrompt": "an owl in a library, cinematic lighting",
        "NegativePrompt": "cartoon",
        "Steps": 30,
        "Sampler": "euler_ancestral",
        "CfgScale": 7,
        "Seed": 18000000000000000000,  # a ulong: past the largest signed 64-bit number
        "Height": 1216,
        "Width": 832,
        "ModelHash": None,
        "ModelName": "juggernautXL_v9.safetensors",
        "FrameCount": 0,
        "MotionBucketId": 0,
        "Scheduler": "normal",
    }
    text = a1111_text(
        "an owl in a library, cinematic lighting",
        "cartoon",
        "Steps: 30, Sampler: euler_ancestral, CFG scale: 7, Seed: 18000000000000000000, Size: "
        "832x1216, Model: juggernautXL_v9",
    )
    expected = expect(
        "stability-matrix",
        prompt="an owl in a library, cinematic lighting",
        negative_prompt="cartoon",
        seed=18000000000000000000,
        steps=30,
        guidance=7.0,
        width=832,
        height=1216,
        model="juggernautXL_v9.safetensors",
        sampler="euler_ancestral",
    )
    project = {"Version": 2, "ProjectType": "TextToImage", "State": {}}
    chunks = [
        text_chunk("parameters", text, "utf-8"),
        text_chunk("parameters-json", json.dumps(params, separators=(",", ":")), "utf-8"),
        text_chunk("smproj", json.dumps(project, separators=(",", ":")), "utf-8"),
    ]
    return [
        ForeignImage(
            "stabilitymatrix.png",
            "stability-matrix",
            png_with_chunks(chunks, after_pixels=True),
            expected,
        ),
        ForeignImage(
            "stabilitymatrix_json_only.png",
            "stability-matrix",
            png_with_chunks(chunks[1:2]),
            expected,
        ),
    ]


def civitai() -> list[ForeignImage]:
    name = "civitai"
    air = "urn:air:sdxl:checkpoint:civitai:133005@357609"
    extra = {
        "prompt": "a red panda astronaut, detailed",
        "negativePrompt": "low quality",
        "steps": 25,
        "cfgScale": 7,
        "sampler": "DPM++ 2M Karras",
        "seed": 2119040612,
        "workflowId": "txt2img",
        "resources": [{"modelVersionId": 357609, "strength": 1}],
    }
    graph = {
        "resource-stack": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": air}},
        "6": {
            "class_type": "smZ CLIPTextEncode",
            "inputs": {"text": extra["prompt"], "clip": ["resource-stack", 1]},
        },
        "7": {
            "class_type": "smZ CLIPTextEncode",
            "inputs": {"text": "low quality", "clip": ["resource-stack", 1]},
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 832, "height": 1216, "batch_size": 1},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 2119040612,
                "steps": 25,
                "cfg": 7,
                "sampler_name": "dpmpp_2m",
                "scheduler": "karras",
                "denoise": 1,
                "model": ["resource-stack", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "extra": {"airs": [air]},
        "extraMetadata": json.dumps(extra),
    }
    on_site = expect(
        "civitai",
        prompt="a red panda astronaut, detailed",
        negative_prompt="low quality",
        seed=2119040612,
        steps=25,
        guidance=7.0,
        width=832,
        height=1216,
        model=air,
        sampler="DPM++ 2M Karras",
    )
    meta = {
        "prompt": "isometric cozy cabin, snow",
        "negativePrompt": "text",
        "cfgScale": 5.5,
        "steps": 35,
        "sampler": "Euler a",
        "seed": 55,
        "Size": "768x512",
        "Model": "dreamshaper_8",
        "Model hash": "879db523c3",
        "resources": [{"name": "dreamshaper_8", "type": "model", "hash": "879db523c3"}],
    }
    a1111_site = a1111_text(
        "a red panda astronaut, detailed",
        "low quality",
        "Steps: 25, CFG scale: 7, Sampler: DPM++ 2M Karras, Seed: 2119040612, workflow: "
        'txt2img, Size: 832x1216, Clip skip: 2, Civitai resources: [{"type":"checkpoint",'
        '"modelVersionId":357609,"modelName":"Juggernaut XL","modelVersionName":"v9"}], '
        "Civitai metadata: {}",
    )
    return [
        ForeignImage(
            "civitai_generator.jpg",
            name,
            jpeg_with_app1(piexif_user_comment(json.dumps(graph))),
            on_site,
        ),
        ForeignImage(
            "civitai_meta.png",
            name,
            pillow_png([("parameters", json.dumps(meta))]),
            expect(
                "civitai",
                prompt="isometric cozy cabin, snow",
                negative_prompt="text",
                seed=55,
                steps=35,
                guidance=5.5,
                width=768,
                height=512,
                model="dreamshaper_8",
                sampler="Euler a",
            ),
        ),
        ForeignImage(
            "civitai_a1111.jpeg",
            name,
            jpeg_with_app1(piexif_user_comment(a1111_site)),
            on_site | {"source_format": "parameters", "model": ""},
        ),
    ]


def easy_diffusion() -> list[ForeignImage]:
    task = {
        "prompt": "a steampunk airship above the clouds",
        "negative_prompt": "people",
        "seed": 4242,
        "use_stable_diffusion_model": "sd-v1-5",
        "clip_skip": False,
        "use_vae_model": "",
        "sampler_name": "dpmpp_2m",
        "width": 512,
        "height": 768,
        "num_inference_steps": 25,
        "guidance_scale": 7.5,
        "use_lora_model": "",
        "tiling": "none",
        "use_face_correction": "GFPGANv1.4",
        "use_upscale": "",
    }
    return [
        ForeignImage(
            "easydiffusion.png",
            "easy-diffusion",
            pillow_png([(key, str(value)) for key, value in task.items()]),
            expect(
                "easy-diffusion",
                prompt="a steampunk airship above the clouds",
                negative_prompt="people",
                seed=4242,
                steps=25,
                guidance=7.5,
                width=512,
                height=768,
                model="sd-v1-5",
                sampler="dpmpp_2m",
            ),
        )
    ]


# --------------------------------------------------------------------------- odd writers


def odd_writers() -> list[ForeignImage]:
    """A JPEG comment, UTF-8 in iTXt by hand, and writers' bugs: absurd values, huge text."""
    comment = a1111_text(
        "a quiet harbour", "", "Steps: 15, Sampler: DDIM, CFG scale: 9, Seed: 31, Size: 768x512"
    )
    absurd = a1111_text(
        "an impossible request",
        "",
        "Steps: 1000000000000000000000000, Sampler: Euler, CFG scale: 7, Seed: -5, Size: 0x0, "
        "Model: m",
    )
    absurd_json = {
        "sui_image_params": {
            "prompt": "types gone wrong",
            "negativeprompt": 5,
            "model": "m",
            "seed": 18446744073709551615,  # the largest 64-bit seed: fine
            "steps": 20.5,
            "cfgscale": "7.5",
            "width": True,
            "height": -512,
            "sampler": "euler",
        }
    }
    huge = a1111_text(
        "x" * (1100 * 1024), "", "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64"
    )
    return [
        ForeignImage(
            "comment.jpg",
            "jpeg-comment",
            pillow_save(fmt="JPEG", comment=comment.encode("utf-8"), quality=90),
            expect(
                "parameters",
                prompt="a quiet harbour",
                seed=31,
                steps=15,
                guidance=9.0,
                width=768,
                height=512,
                sampler="DDIM",
            ),
        ),
        ForeignImage(
            "absurd_values.png",
            "damaged",
            pillow_png([("parameters", absurd)]),
            expect(
                "parameters",
                prompt="an impossible request",
                guidance=7.0,
                model="m",
                sampler="Euler",
            ),
            notes=("steps", "seed", "width", "height"),
        ),
        ForeignImage(
            "absurd_types.png",
            "damaged",
            png_with_chunks([itxt_chunk("parameters", json.dumps(absurd_json))]),
            expect(
                "swarmui",
                prompt="types gone wrong",
                seed=18446744073709551615,
                guidance=7.5,
                model="m",
                sampler="euler",
            ),
            notes=("negative prompt", "steps", "width", "height"),
        ),
        ForeignImage(
            "huge_prompt.png",
            "damaged",
            pillow_png([("parameters", huge)]),
            expect("none"),
            notes=("longer than 1 MiB",),
            fuzz=False,
        ),
    ]
