"""torch.compile: the MoE layers trace as one graph (fullgraph=True) in eval mode."""

import torch

from moeclip_hf import MoECLIPModel
from moeclip_hf.testing import randomize_moe, tiny_config


def test_moe_layers_and_the_vision_tower_compile_without_graph_breaks():
    model = randomize_moe(MoECLIPModel(tiny_config()))
    hidden = torch.randn(2, model.config.grid_size**2 + 1, 64)
    pixel_values = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        layer = model.moe_layers()[0]
        compiled_layer = torch.compile(layer, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled_layer(hidden), layer(hidden))
        compiled_tower = torch.compile(model.vision_model, fullgraph=True, backend="eager")
        torch.testing.assert_close(
            compiled_tower(pixel_values=pixel_values).last_hidden_state,
            model.vision_model(pixel_values=pixel_values).last_hidden_state,
        )


def test_the_whole_model_compiles_and_gives_the_same_maps():
    model = MoECLIPModel(tiny_config()).eval()
    pixel_values = torch.randn(1, 3, 64, 64)
    text = torch.nn.functional.normalize(torch.randn(1, 2, 32), dim=-1)
    with torch.no_grad():
        compiled = torch.compile(model, backend="eager")
        torch.testing.assert_close(
            compiled(pixel_values=pixel_values, text_embeds=text).anomaly_map,
            model(pixel_values=pixel_values, text_embeds=text).anomaly_map,
        )
