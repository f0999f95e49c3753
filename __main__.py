"""Student Success Prediction System: read the stack's config, run the program of its role
(a tier's regional stack, or tier 4's global stack) and export what it returns."""

import pulumi

from components.config.spec import load_spec
from components.config.spec_global import load_global_spec, load_role
from stacks.global_stack import global_program
from stacks.regional import regional_program

if load_role() == "global":
    outputs = global_program(load_global_spec())
else:
    outputs = regional_program(load_spec())

for key, value in outputs.items():
    pulumi.export(key, value)
