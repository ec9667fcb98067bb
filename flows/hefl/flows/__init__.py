"""Build flows and reports: Verilog, synthesis, ECP5 bitstream, Alveo, hw-report.

Nothing here is gateware; these modules take the components of
:mod:`hefl.hw` and turn them into files under ``build/``:

* :mod:`~hefl.flows.verilog`: Amaranth → Verilog (every generated ``.v``);
* :mod:`~hefl.flows.synth`: yosys (``synth_xilinx -family xcup``, ``synth_ecp5``);
* :mod:`~hefl.flows.ecp5`: ``hefl bitstream`` (nextpnr-ecp5, ecppack);
* :mod:`~hefl.flows.alveo` and :mod:`~hefl.flows.kernel_xml`: ``hefl alveo`` (package_xo, v++);
* :mod:`~hefl.flows.report` and its sections: ``hefl hw-report``;
* :mod:`~hefl.flows.regmap_doc`: the register map as Markdown.
"""
