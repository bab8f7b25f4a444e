"""report.md of a bundle, rendered from its report.json: written by ``edgekit build``, rewritten by ``compile``."""

from typing import Any, Dict


def render_report(report: Dict[str, Any]) -> str:
    """The human-readable report.md from report.json."""
    model = report["model"]
    lines = [
        f"# edgekit bundle: {model['name']} for {report['target']}",
        "",
        f"- precision: **{report['precision']['chosen']}** ({report['precision']['reason']})",
        f"- input: {report['input_size'][0]}x{report['input_size'][1]}, "
        f"{model['params']:,} parameters, {model['macs'] / 1e9:.2f} GMACs",
        f"- runtime ONNX (onnxruntime anywhere): `{report['artifacts']['runtime_onnx']}`",
        f"- engine: {report['compile']}",
        "",
    ]
    layers = (report.get("engine") or {}).get("layers")
    if layers:
        lines += [f"- engine layers ({layers['source']}): {layers['dla']} on the DLA, {layers['gpu']} on the GPU", ""]
    if report.get("trtexec"):
        lines += [
            "The same engine without Python (in the bundle folder on the board; compare its log and speed):",
            "",
            f"    {report['trtexec']}",
            "",
        ]
    lines += [
        "## Accuracy",
        "",
    ]
    accuracy = report["metrics"].get("accuracy", {})
    lines += [f"{accuracy.get('data', '')}, {accuracy.get('runtime', '')}.", ""]
    lines += ["| variant | file | mIoU | pixel agreement with FP32 |", "|---|---|---|---|"]
    for precision, values in accuracy.get("variants", {}).items():
        file = report["artifacts"]["onnx"][precision]
        lines.append(f"| {precision} | `{file}` | {values['miou']:.4f} | {values['agreement_with_fp32']:.2%} |")
    int8 = report["metrics"].get("int8")
    if int8:
        budget = "met" if int8["met_budget"] else "NOT met (details: metrics.int8 in report.json)"
        lines += [
            "",
            f"INT8 ({int8['method']}, {int8['calibration_images']} images of `{int8['calibration_set']}`): "
            f"{int8['int8_layers']}/{int8['conv_layers']} convolutions in INT8, hold-out pixel agreement with FP32 "
            f"{int8['pixel_agreement']:.2%}; budget of {int8['max_drop']} changed pixels {budget}. "
            f"Calibration cache: `{report['artifacts']['calibration_cache']}` (TensorRT {int8['trt_version']} header).",
        ]
        if "holdout_scheme" in int8:  # bundles built before the hold-out was reported lack it
            lines += ["", f"Hold-out ({int8['holdout_scheme']}): {int8['holdout_reason']}."]
        if int8.get("classes_below_iou_floor"):
            lost = ", ".join(
                "{} {:.2f}".format(name, int8["class_iou_vs_fp32"][name]) for name in int8["classes_below_iou_floor"]
            )
            lines += ["", f"**Classes INT8 loses** (IoU against FP32 below {int8['class_iou_floor']}): {lost}."]
        if int8.get("calibration_warning"):
            lines += ["", f"**Calibration:** {int8['calibration_warning']}."]
    source = report["metrics"].get("model_source", {})
    if "best_val_miou" in source:
        lines += ["", f"Trained on {source['trained_on']} (val mIoU {source['best_val_miou']:.4f})."]
    lines += ["", "## Stages", "", "| stage | seconds | result |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['seconds']:.1f} | {s['summary']} |" for s in report["stages"]]
    return "\n".join(lines) + "\n"
