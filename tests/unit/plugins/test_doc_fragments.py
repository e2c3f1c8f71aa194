# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Options several modules share are documented once (doc fragments) and defaulted once (constants).
(ansible-test's validate-modules compares each module's docs with its spec; this checks the
fragments against the constants and that every module with such an option uses the fragment.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.kvmops.migration.plugins.doc_fragments import destination, state_dir
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import DEFAULT_STATE_DIR

MODULES = Path(__file__).resolve().parents[3] / 'plugins' / 'modules'


def documentation(module):
    text = (MODULES / ('%s.py' % module)).read_text()
    return yaml.safe_load(re.search(r"DOCUMENTATION = r'''(.*?)'''", text, re.S).group(1))


def test_the_state_dir_fragment_states_the_constant_default():
    option = yaml.safe_load(state_dir.ModuleDocFragment.DOCUMENTATION)['options']['state_dir']
    assert option['default'] == DEFAULT_STATE_DIR and option['type'] == 'path'


@pytest.mark.parametrize('module,fragment,options', [
    ('virt_migrate', 'kvmops.migration.destination', ['dest', 'transport']),
    ('virt_migrate_preflight', 'kvmops.migration.destination', ['dest', 'transport']),
    ('virt_migrate', 'kvmops.migration.state_dir', ['state_dir']),
    ('virt_migrate_info', 'kvmops.migration.state_dir', ['state_dir']),
    ('virt_evacuate', 'kvmops.migration.state_dir', ['state_dir']),
])
def test_shared_options_come_from_their_fragment(module, fragment, options):
    doc = documentation(module)
    assert fragment in doc['extends_documentation_fragment']
    assert not set(options) & set(doc['options']), 'documented again in %s' % module


def test_no_module_documents_state_dir_or_its_default_itself():
    for path in MODULES.glob('*.py'):
        doc = documentation(path.stem)
        assert 'state_dir' not in doc.get('options', {}), path.name
        assert "default='%s'" % DEFAULT_STATE_DIR not in path.read_text(), path.name


def test_the_destination_fragment_has_dest_and_transport():
    options = yaml.safe_load(destination.ModuleDocFragment.DOCUMENTATION)['options']
    assert options['dest']['required'] is True
    assert options['transport']['choices'] == ['ssh', 'tls', 'tcp'] and options['transport']['default'] == 'ssh'
