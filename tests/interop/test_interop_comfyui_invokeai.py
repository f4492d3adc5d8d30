"""ComfyUI graphs and InvokeAI's JSON, read by `studio.interop` (moved from the core's
metadata tests when these readers left the core)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.interop import comfyui, invokeai, read
from studio.interop.entries import Entries
from studio.interop.values import checked


def png_with_text(path: Path, texts: dict[str, str]) -> Path:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8)).save(path, "PNG", pnginfo=info)
    return path


def checked_invokeai(data: dict[str, object]) -> None:
    entries = Entries("x.png", texts={"invokeai_metadata": json.dumps(data)})
    for found in invokeai.read(entries):
        checked(found)


COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8.0,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1.0,
            "model": ["10", 0],
            "positive": ["11", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 1024, "height": 768, "batch_size": 1},
    },
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["12", 0], "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["10", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["14", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "10": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "detail.safetensors",
            "strength_model": 0.7,
            "strength_clip": 0.7,
            "model": ["4", 0],
            "clip": ["4", 1],
        },
    },
    "11": {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {
            "positive": ["6", 0],
            "negative": ["7", 0],
            "control_net": ["15", 0],
            "image": ["16", 0],
            "strength": 0.8,
        },
    },
    "12": {"class_type": "String Literal", "inputs": {"string": "beautiful scenery, 🌄 sunrise"}},
    "13": {
        "class_type": "LatentUpscale",
        "inputs": {"samples": ["3", 0], "width": 2048, "height": 1536, "upscale_method": "nearest"},
    },
    "14": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 1,
            "steps": 10,
            "cfg": 8.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 0.5,
            "model": ["10", 0],
            "positive": ["11", 0],
            "negative": ["7", 0],
            "latent_image": ["13", 0],
        },
    },
}

COMFY_WORKFLOW = {
    "last_node_id": 9,
    "nodes": [
        {
            "id": 3,
            "type": "KSampler",
            "widgets_values": [8566257, "randomize", 25, 6.5, "euler", "normal", 1],
            "inputs": [
                {"name": "model", "link": 1},
                {"name": "positive", "link": 4},
                {"name": "negative", "link": 6},
                {"name": "latent_image", "link": 2},
            ],
        },
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["v1-5.ckpt"]},
        {"id": 5, "type": "EmptyLatentImage", "widgets_values": [512, 640, 1]},
        {
            "id": 6,
            "type": "CLIPTextEncode",
            "widgets_values": ["a lighthouse at dusk"],
            "inputs": [{"name": "clip", "link": 3}],
        },
        {
            "id": 7,
            "type": "CLIPTextEncode",
            "widgets_values": ["lowres"],
            "inputs": [{"name": "clip", "link": 5}],
        },
    ],
    "links": [
        [1, 4, 0, 3, 0, "MODEL"],
        [2, 5, 0, 3, 3, "LATENT"],
        [3, 4, 1, 6, 0, "CLIP"],
        [4, 6, 0, 3, 1, "CONDITIONING"],
        [5, 4, 1, 7, 0, "CLIP"],
        [6, 7, 0, 3, 2, "CONDITIONING"],
    ],
}


def test_comfyui_api_graph(tmp_path: Path) -> None:
    texts = {"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps(COMFY_WORKFLOW)}
    found = read(png_with_text(tmp_path / "ComfyUI_00001_.png", texts))

    assert found.source_format == "comfyui"
    assert found.prompt == "beautiful scenery, 🌄 sunrise"  # via ControlNet and a string node
    assert found.negative_prompt == "text, watermark"
    assert (found.seed, found.steps, found.guidance) == (156680208700286, 20, 8.0)  # first pass
    assert (found.width, found.height) == (1024, 768)
    assert (found.model, found.sampler) == ("sd_xl_base_1.0.safetensors", "dpmpp_2m")
    assert found.extra == {"Scheduler": "karras"}
    request = found.to_request(seed=9)  # ComfyUI's 64-bit seed does not fit: default used
    assert (request.seed, request.options["sampler"]) == (9, "dpmpp_2m")


def test_comfyui_workflow_when_prompt_is_missing(tmp_path: Path) -> None:
    texts = {"workflow": json.dumps(COMFY_WORKFLOW)}
    found = read(png_with_text(tmp_path / "w.png", texts))

    assert found.source_format == "comfyui"
    assert (found.prompt, found.negative_prompt) == ("a lighthouse at dusk", "lowres")
    assert (found.seed, found.steps, found.guidance, found.sampler) == (8566257, 25, 6.5, "euler")
    assert (found.width, found.height, found.model) == (512, 640, "v1-5.ckpt")


def test_comfyui_cycles_and_dangling_links_do_not_hang(tmp_path: Path) -> None:
    graph = {
        "1": {
            "class_type": "KSampler",
            "inputs": {
                "seed": ["2", 0],
                "steps": 5,
                "cfg": 1,
                "positive": ["2", 0],
                "negative": ["99", 0],
                "latent_image": ["2", 0],
            },
        },
        "2": {"class_type": "Loop", "inputs": {"a": ["3", 0], "seed": ["3", 0]}},
        "3": {"class_type": "Loop", "inputs": {"b": ["2", 0], "seed": ["2", 0]}},
    }
    found = read(png_with_text(tmp_path / "c.png", {"prompt": json.dumps(graph)}))
    assert found.source_format == "comfyui"
    assert (found.prompt, found.seed, found.steps, found.width) == ("", None, 5, None)


WEIRD_VALUES = [None, [], {}, "x", ["999", 0], ["3", 0], [1, 2, 3], 10**400, 1e308, True, -1]


def test_comfyui_reader_survives_any_value_anywhere() -> None:
    for node_id, node in COMFY_PROMPT.items():
        for name in node["inputs"]:
            for weird in WEIRD_VALUES:
                graph = json.loads(json.dumps(COMFY_PROMPT))
                graph[node_id]["inputs"][name] = weird
                comfyui.from_json(graph)
    for weird in WEIRD_VALUES:
        workflow = dict(COMFY_WORKFLOW, links=weird)
        comfyui.from_json(None, workflow)
        workflow = dict(COMFY_WORKFLOW, nodes=[{"id": 3, "type": "KSampler", "inputs": weird}])
        comfyui.from_json(None, workflow)
        checked_invokeai({"seed": weird, "cfg_scale": weird, "model": weird})


def test_invokeai_metadata(tmp_path: Path) -> None:
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
    texts = {"invokeai_metadata": json.dumps(v4), "invokeai_graph": "{}"}
    found = read(png_with_text(tmp_path / "i.png", texts))

    assert found.source_format == "invokeai"
    assert (found.prompt, found.negative_prompt) == ("a watercolor fox", "photo")
    assert (found.seed, found.steps, found.guidance) == (356120443, 30, 7.5)
    assert (found.width, found.height, found.sampler) == (768, 512, "dpmpp_2m_k")
    assert (found.model, found.model_hash) == ("dreamshaper-8", "blake3:abcd")

    v3 = dict(v4, model={"model_name": "amixx", "base_model": "sd-1", "model_type": "main"})
    found = read(png_with_text(tmp_path / "i3.png", {"invokeai_metadata": json.dumps(v3)}))
    assert found.model == "amixx"
