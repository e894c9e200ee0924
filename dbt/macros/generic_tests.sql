{#- Generic tests (the project has no package downloads: these replace dbt_utils'). -#}

{#- Rows where the expression is false or null fail. -#}
{% test expression_is_true(model, expression, column_name=none, where_clause=none) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% if where_clause %}  and ({{ where_clause }}){% endif %}
{% endtest %}

{#- Every list column of a group holds as many elements as the first one, row by row. -#}
{% test parallel_lists(model, columns) %}
select *
from {{ model }}
where
{%- for column in columns[1:] %}
    {{ edgerec.list_length(column) }} != {{ edgerec.list_length(columns[0]) }}{% if not loop.last %} or{% endif %}
{%- endfor %}
{% endtest %}

{#- The model holds at least `min_rows` rows. -#}
{% test at_least_rows(model, min_rows=1) %}
select count(*) as row_count
from {{ model }}
having count(*) < {{ min_rows }}
{% endtest %}

{#- No two rows share the same values of `columns` (the grain of a multi-column key). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_with_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
