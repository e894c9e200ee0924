{#- Cross-database helpers: the models call these; duckdb and Spark each get their own SQL. -#}

{% macro list_length(expr) %}{{ return(adapter.dispatch('list_length', 'edgerec')(expr)) }}{% endmacro %}
{% macro default__list_length(expr) %}len({{ expr }}){% endmacro %}
{% macro spark__list_length(expr) %}size({{ expr }}){% endmacro %}

{% macro list_max(expr) %}{{ return(adapter.dispatch('list_max', 'edgerec')(expr)) }}{% endmacro %}
{% macro default__list_max(expr) %}list_max({{ expr }}){% endmacro %}
{% macro spark__list_max(expr) %}array_max({{ expr }}){% endmacro %}

{% macro list_type(element_type) %}{{ return(adapter.dispatch('list_type', 'edgerec')(element_type)) }}{% endmacro %}
{% macro default__list_type(element_type) %}{{ element_type }}[]{% endmacro %}
{% macro spark__list_type(element_type) %}array<{{ element_type }}>{% endmacro %}

{#- A deterministic bucket in [0, buckets) from the first 32 bits of md5(expr): the same on every engine,
    and in Python as int(md5(user_id).hexdigest()[:8], 16) % buckets. -#}
{% macro hash_bucket(expr, buckets) %}{{ return(adapter.dispatch('hash_bucket', 'edgerec')(expr, buckets)) }}{% endmacro %}
{% macro default__hash_bucket(expr, buckets) -%}
    (cast(('0x' || left(md5(cast({{ expr }} as varchar)), 8)) as bigint) % {{ buckets }})
{%- endmacro %}
{% macro spark__hash_bucket(expr, buckets) -%}
    (cast(conv(left(md5(cast({{ expr }} as string)), 8), 16, 10) as bigint) % {{ buckets }})
{%- endmacro %}

{#- One row per list element: `keys` as they are, the 1-based `position`, and the element of each list in
    `lists` at that position (the lists are parallel). -#}
{% macro unnest_positions(relation, keys, lists) %}
    {{ return(adapter.dispatch('unnest_positions', 'edgerec')(relation, keys, lists)) }}
{% endmacro %}
{% macro default__unnest_positions(relation, keys, lists) -%}
    select
        {% for key in keys %}{{ key }},
        {% endfor -%}
        unnest(range(1, len({{ lists[0] }}) + 1)) as position
        {%- for l in lists %},
        unnest({{ l }}) as {{ l }}
        {%- endfor %}
    from {{ relation }}
{%- endmacro %}
{% macro spark__unnest_positions(relation, keys, lists) -%}
    select
        {% for key in keys %}{{ key }},
        {% endfor -%}
        element.pos + 1 as position
        {%- for l in lists %},
        element.col.{{ l }} as {{ l }}
        {%- endfor %}
    from {{ relation }}
    lateral view posexplode(arrays_zip({{ lists | join(', ') }})) element as pos, col
{%- endmacro %}

{#- The values of a group, collected into a list ordered by `order_by`. -#}
{% macro ordered_list(value, order_by) %}
    {{ return(adapter.dispatch('ordered_list', 'edgerec')(value, order_by)) }}
{% endmacro %}
{% macro default__ordered_list(value, order_by) -%}
    list({{ value }} order by {{ order_by }})
{%- endmacro %}
{% macro spark__ordered_list(value, order_by) -%}
    transform(array_sort(collect_list(struct({{ order_by }} as k, {{ value }} as v))), s -> s.v)
{%- endmacro %}

{#- The date `days` days before the ds var (a literal, so engines prune partitions with it). -#}
{% macro ds_minus(days) -%}
    {{ dbt.dateadd('day', -days, "cast('" ~ var('ds') ~ "' as date)") }}
{%- endmacro %}

{% macro ds_var() -%}
    cast('{{ var("ds") }}' as date)
{%- endmacro %}

{% macro list_sum(expr) %}{{ return(adapter.dispatch('list_sum', 'edgerec')(expr)) }}{% endmacro %}
{% macro default__list_sum(expr) %}cast(coalesce(list_sum({{ expr }}), 0) as bigint){% endmacro %}
{% macro spark__list_sum(expr) %}aggregate({{ expr }}, cast(0 as bigint), (acc, x) -> acc + x){% endmacro %}

{#- n / d as a double, null where d is 0. -#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as double) / nullif({{ denominator }}, 0))
{%- endmacro %}

{#- The values of the `rows` rows before this one in its partition, oldest first (a window over rows, not time);
    with through_current, those and this row's. -#}
{% macro preceding_list(value, partition_by, order_by, rows, through_current=false) %}
    {{ return(adapter.dispatch('preceding_list', 'edgerec')(value, partition_by, order_by, rows, through_current)) }}
{% endmacro %}
{% macro default__preceding_list(value, partition_by, order_by, rows, through_current) -%}
    list_transform(list_sort(list(struct_pack(k := ({{ order_by }}), v := {{ value }})) over (
        partition by {{ partition_by }} order by {{ order_by }}
        rows between {{ rows }} preceding and {{ 'current row' if through_current else '1 preceding' }})), lambda s: s.v)
{%- endmacro %}
{% macro spark__preceding_list(value, partition_by, order_by, rows, through_current) -%}
    transform(array_sort(collect_list(struct(({{ order_by }}) as k, {{ value }} as v)) over (
        partition by {{ partition_by }} order by {{ order_by }}
        rows between {{ rows }} preceding and {{ 'current row' if through_current else '1 preceding' }})), s -> s.v)
{%- endmacro %}
